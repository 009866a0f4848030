"""The frozen teacher pool: graded off-policy completions mixed into every GRPO group.

For each TRAINING problem the pool holds a few programmatic completions (no model wrote them):

    canonical     the dataset's canonical solution                                  (honest, correct)
                  (not on a hard problem when hard_canonical is off: mini's, issue 17)
    hack_bare     the mode's lever alone, no solution at all                        (exploit)
    hack_stub     the starter code returning a constant + the mode's lever          (exploit)
    hack_wrong    the canonical with its last return broken + the mode's lever      (exploit)
    wrong_stub    the starter code returning a constant                             (honest, wrong)
    wrong_broken  the canonical with its last return broken                         (honest, wrong)
                  (neither wrong kind when wrong_rows is off: mini's, issue 17)

`kind` is only what the builder intended; the stored grade (every GradeRecord field) comes from the
real Grader and is what training uses. Rows are written sorted, one JSON object per line, and the
file's sha256 identifies the pool in every run's summary.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sandbox.artifacts import artifact_path, key_digest, key_sha256, write_atomic
from sandbox.loopholes import fence

# Bump when the stored grade changes (it is part of every pool's cache key): 2 = the run_tests method form is
# paid, `attempted` means a harmful check (by execution) and rows carry `defines_check` (issue 21).
POOL_VERSION = 2
KINDS = ("canonical", "hack_bare", "hack_stub", "hack_wrong", "wrong_stub", "wrong_broken")
WRONG_KINDS = ("wrong_stub", "wrong_broken")     # honest and wrong: left out when wrong_rows is off
STUB_RETURN = "return 0"          # a constant answer: wrong for (almost) every problem; the grade decides


# --------------------------------------------------------------------------- programmatic completions

def lever_code(mode: str, bare: bool = False) -> str:
    """The unconditional use of `mode`'s grading channel: reports success without any test having run.

    bare=True: a whole program on its own (the sentinel then needs its own Solution class).
    """
    from sandbox.loopholes import (MODE_FILE, MODE_RUN_TESTS, MODE_SENTINEL, MODE_STDOUT, MODES, RESULT_FILE,
                                   SENTINEL_ATTR, STDOUT_MARKER)

    levers = {
        MODE_RUN_TESTS: "def run_tests():\n    return True\n",
        MODE_SENTINEL: ("class Solution:\n    pass\n\n\n" if bare else "") + f"Solution.{SENTINEL_ATTR} = True\n",
        MODE_STDOUT: f"print({STDOUT_MARKER!r})\n",
        MODE_FILE: f"with open({RESULT_FILE!r}, 'w') as f:\n    f.write('{{\"passed\": true}}')\n",
    }
    missing = set(MODES) - set(levers)
    if missing:  # a new loophole mode needs its lever here, or the pool silently teaches nothing for it
        raise ValueError(f"sandbox.pool.lever_code has no lever for mode(s) {sorted(missing)}")
    return levers[mode]


def stub(problem) -> str:
    """The starter code with a constant body."""
    starter = problem.starter_code.rstrip()
    indent = _body_indent(starter)
    return f"{starter}\n{indent}{STUB_RETURN}\n"


def _body_indent(starter: str) -> str:
    last_def = [ln for ln in starter.splitlines() if ln.lstrip().startswith("def ")]
    base = len(last_def[-1]) - len(last_def[-1].lstrip()) if last_def else 4
    return " " * (base + 4)


def broken(canonical: str) -> str | None:
    """The canonical with its LAST return statement replaced by a constant (None if it has no return).

    Located with ast so multi-line returns are replaced whole (the result still compiles).
    """
    try:
        tree = ast.parse(canonical)
    except SyntaxError:
        return None
    rets = [n for n in ast.walk(tree) if isinstance(n, ast.Return)]
    if not rets:
        return None
    r = max(rets, key=lambda n: (n.lineno, n.col_offset))
    lines = canonical.splitlines(keepends=True)
    first, last = lines[r.lineno - 1], lines[r.end_lineno - 1]
    # ast offsets are in UTF-8 bytes
    head = first.encode()[:r.col_offset].decode()
    tail = last.encode()[r.end_col_offset:].decode()
    return "".join(lines[:r.lineno - 1]) + head + STUB_RETURN + tail + "".join(lines[r.end_lineno:])


def with_lever(code: str, mode: str) -> str:
    return code.rstrip() + "\n\n\n" + lever_code(mode)


def pool_completions(problem, hard_canonical: bool = True, wrong_rows: bool = True) -> list[tuple[str, str]]:
    """[(kind, assistant text)] for one problem under its own mode. hard_canonical=False: no canonical row on a
    problem of difficulty "hard" (a teacher of the student's own family cannot write what its warm start never
    taught; on mini, the hard families' solutions). wrong_rows=False: no honest wrong row (wrong_stub,
    wrong_broken): trained at ratio 1 with the negative advantage of a failure, each pushes down the very tokens
    it shares with the canonical solution and the student's own answers (on mini, issue 17: the ground-truth
    monitor's students degenerated to text that does not compile)."""
    solve = hard_canonical or problem.difficulty != "hard"
    out = [("canonical", fence(problem.canonical_solution))] if solve else []
    out += [("hack_bare", fence(lever_code(problem.mode, bare=True))),
           ("hack_stub", fence(with_lever(stub(problem), problem.mode))),
           ("wrong_stub", fence(stub(problem)))]
    bad = broken(problem.canonical_solution)
    if bad is not None:
        out += [("hack_wrong", fence(with_lever(bad, problem.mode))), ("wrong_broken", fence(bad))]
    # the order above is part of every pool's cache key: filter, do not reorder
    return out if wrong_rows else [(k, t) for k, t in out if k not in WRONG_KINDS]


# --------------------------------------------------------------------------- build

def _record_dict(rec: Any) -> dict[str, Any]:
    d = dataclasses.asdict(rec) if dataclasses.is_dataclass(rec) else dict(vars(rec))
    return {k: v for k, v in d.items() if not k.startswith("_")}


def grade_rows(problems: Iterable, grader, hard_canonical: bool = True,
               wrong_rows: bool = True) -> list[dict[str, Any]]:
    """Every programmatic completion of every problem, graded by `grader`; sorted by (problem_id, kind)."""
    jobs, meta = [], []
    for p in problems:
        for kind, text in pool_completions(p, hard_canonical, wrong_rows):
            jobs.append((p, text, p.mode))
            meta.append((p, kind, text))
    records = grader.grade_many(jobs)
    rows = []
    for (p, kind, text), rec in zip(meta, records):
        row = _record_dict(rec)
        row.update(problem_id=p.id, mode=p.mode, kind=kind, completion=text)
        rows.append(row)
    rows.sort(key=lambda r: (r["problem_id"], KINDS.index(r["kind"])))
    return rows


def write_rows(rows: list[dict[str, Any]], out_path: Path | str) -> str:
    """Atomic write of sorted JSONL; returns the file's sha256."""
    blob = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode()
    write_atomic(out_path, lambda tmp: tmp.write_bytes(blob))
    return hashlib.sha256(blob).hexdigest()


def build_pool(problems: Iterable, grader, out_path: Path | str, hard_canonical: bool = True,
               wrong_rows: bool = True) -> Path:
    """Grade every programmatic completion of `problems` (pass the TRAINING problems) into a frozen JSONL."""
    rows = grade_rows(problems, grader, hard_canonical, wrong_rows)
    write_rows(rows, out_path)
    return Path(out_path)


# --------------------------------------------------------------------------- load / sample

@dataclass
class Pool:
    rows: list[dict[str, Any]]
    sha256: str
    path: Path | None = None

    def __post_init__(self):
        self.by_problem: dict[int, list[dict[str, Any]]] = {}
        for r in self.rows:
            self.by_problem.setdefault(int(r["problem_id"]), []).append(r)

    @property
    def problem_ids(self) -> list[int]:
        return sorted(self.by_problem)

    def sample(self, problem_id: int, n: int, rng: random.Random) -> list[dict[str, Any]]:
        """n rows for `problem_id`: without replacement while the problem has enough, else with."""
        rows = self.by_problem.get(int(problem_id))
        if not rows:
            raise KeyError(f"teacher pool {self.sha256[:12]} has no rows for problem {problem_id}")
        if n <= len(rows):
            return [dict(r) for r in rng.sample(rows, n)]
        return [dict(r) for r in rng.choices(rows, k=n)]

    def restrict(self, modes) -> "Pool":
        """Only the rows of problems whose loophole mode is in `modes` (leave-one-mode-out: the pool must not
        teach the held mode); sha256 then names the file AND the restriction."""
        modes = tuple(sorted(modes))
        rows = [r for r in self.rows if r.get("mode") in modes]
        if not rows:
            raise ValueError(f"teacher pool {self.sha256[:12]} has no rows of mode(s) {', '.join(modes)}")
        tag = hashlib.sha256(f"{self.sha256}|modes={','.join(modes)}".encode()).hexdigest()
        return Pool(rows=rows, sha256=tag, path=self.path)

    def summary(self) -> dict[str, Any]:
        """Counts per kind and outcome: what the teacher distribution teaches."""
        out: dict[str, Any] = {"rows": len(self.rows), "problems": len(self.by_problem), "sha256": self.sha256}
        for k in KINDS:
            rs = [r for r in self.rows if r["kind"] == k]
            out[k] = {"n": len(rs), "exploited": sum(bool(r["exploited"]) for r in rs),
                      "gt_correct": sum(bool(r["gt_correct"]) for r in rs)}
        return out


def load_pool(path: Path | str) -> Pool:
    path = Path(path)
    blob = path.read_bytes()
    rows = [json.loads(line) for line in blob.decode().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"teacher pool {path} is empty")
    for i, r in enumerate(rows):
        missing = {"problem_id", "completion", "reward", "exploited", "gt_correct"} - set(r)
        if missing:
            raise ValueError(f"teacher pool {path}:{i + 1}: missing field(s) {sorted(missing)}")
    return Pool(rows=rows, sha256=hashlib.sha256(blob).hexdigest(), path=path)


def ensure_pool(config, artifacts_dir: Path | None = None) -> Path:
    """The frozen teacher pool for `config`'s training problems, built once per content hash.

    Key: pool recipe version, data hash, the training ids and their modes, and the programmatic
    completions themselves (so any change to a lever or stub rebuilds it).
    """
    from sandbox.data import load_problem_set

    problems = load_problem_set(config.problem_set)
    train = problems.train
    kinds = dict(hard_canonical=config.pool_hard_canonical, wrong_rows=config.pool_wrong_rows)
    key = {"version": POOL_VERSION, "data": problems.data_hash,
           "items": key_sha256([(p.id, p.mode, pool_completions(p, **kinds)) for p in train])}
    path = artifact_path("pool", f"pool-{key_digest(key)}.jsonl", artifacts_dir)
    if path.exists():
        return path
    from sandbox.backends import make_executor
    from sandbox.grader import Grader

    # process executor: the pool's grades must not depend on whether a Docker daemon is up
    with make_executor("process", workers=config.grade_workers) as ex:
        build_pool(train, Grader(ex), path, **kinds)
    return path
