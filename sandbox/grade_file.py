"""Grade a file of completions (`harness grade`): read {"id", "completion", "mode"?} rows, grade them in the
sandbox, write each row with its GradeRecord, and count them per loophole mode x category."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from sandbox.backends import make_executor
from sandbox.executors import Executor
from sandbox.grader import CATEGORIES, GradeRecord, Grader
from sandbox.jsonl import read_lines
from sandbox.loopholes import MODES

class GradeFileError(ValueError):
    """A malformed input row; the message names the line."""


def _read_completions(path: Path, problems: dict[int, Any]) -> list[tuple[dict, Any, str, str | None]]:
    rows = []
    for lineno, row, err in read_lines(path):
        where = f"{path}:{lineno}"
        if err is not None:
            raise GradeFileError(f"{where}: not JSON ({err})") from None
        if not isinstance(row, dict):
            raise GradeFileError(f"{where}: expected an object with 'id' and 'completion'")
        pid, text, mode = row.get("id"), row.get("completion"), row.get("mode")
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise GradeFileError(f"{where}: 'id' must be an integer problem id, got {pid!r}")
        if pid not in problems:
            raise GradeFileError(f"{where}: unknown problem id {pid}")
        if not isinstance(text, str):
            raise GradeFileError(f"{where}: 'completion' must be a string")
        if mode is not None and mode not in MODES:
            raise GradeFileError(f"{where}: unknown mode {mode!r}; choose from {', '.join(MODES)}")
        rows.append((row, problems[pid], text, mode))
    return rows


def summarize(records: Iterable[GradeRecord]) -> dict[str, Any]:
    records = list(records)
    by_mode: dict[str, Counter] = {m: Counter() for m in MODES}
    for r in records:
        by_mode[r.mode][r.category] += 1
    return {
        "n": len(records),
        "by_category": {c: sum(r.category == c for r in records) for c in CATEGORIES},
        "by_mode": {m: {c: by_mode[m][c] for c in CATEGORIES} for m in MODES if sum(by_mode[m].values())},
        "mean_reward": (sum(r.reward for r in records) / len(records)) if records else None,
    }


def grade_file(in_path, out_path=None, sandbox_kind: str | Executor = "auto", workers: int = 2, *,
               split: str | None = None, executor: str | Executor | None = None, out=None) -> dict[str, Any]:
    """Grade {"id", "completion", "mode"?} rows; write input + every GradeRecord field per row, same order.
    Ids resolve against every problem set on this machine (`split` restricts them to one published split).

    `executor` / `out` are accepted as aliases of `sandbox_kind` / `out_path`.
    """
    from sandbox.data import load_problems, problems_by_id

    in_path = Path(in_path)
    out_path = out_path if out_path is not None else out
    kind = executor if executor is not None else sandbox_kind
    problems = problems_by_id() if split is None else {p.id: p for p in load_problems(split)}
    rows = _read_completions(in_path, problems)
    own = not isinstance(kind, Executor)
    ex = make_executor(kind, workers=workers) if own else kind
    try:
        records = Grader(ex).grade_many([(prob, text, mode) for _, prob, text, mode in rows])
        description = getattr(ex, "description", "") or ex.kind
    finally:
        if own:
            ex.close()
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as f:
            for (row, *_), rec in zip(rows, records):
                f.write(json.dumps({**row, **rec.to_dict()}) + "\n")
    summary = summarize(records)
    summary.update(sandbox=description, input=str(in_path), output=None if out_path is None else str(out_path))
    return summary


def summary_table(summary: dict[str, Any]):
    """A rich Table of counts per loophole mode x category (for `harness grade`)."""
    from rich.table import Table

    t = Table(title=f"graded {summary['n']} completion(s) — {summary.get('sandbox', '')}")
    t.add_column("mode")
    for c in CATEGORIES:
        t.add_column(c, justify="right")
    for m, counts in summary["by_mode"].items():
        t.add_row(m, *(str(counts[c]) for c in CATEGORIES))
    t.add_row("[b]all[/b]", *(f"[b]{summary['by_category'][c]}[/b]" for c in CATEGORIES))
    return t
