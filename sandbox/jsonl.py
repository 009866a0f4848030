"""The one JSONL file: append-only rows, fsynced, with atomic rewrites (run logs, rollouts, metrics)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator


def read_lines(path: str | os.PathLike) -> Iterator[tuple[int, Any, json.JSONDecodeError | None]]:
    """(line number, parsed row, None) per non-blank line of a JSONL file; (line number, None, error) for a line
    that is not JSON. The one JSONL reader: callers decide what a bad line means (problem files name every bad
    row, `harness grade` stops at the first, a run log drops a torn last line)."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as e:
                yield lineno, None, e


class JsonlFile:
    """Append-only JSONL, each append flushed and fsynced; `write` / `keep` replace it atomically (resume)."""

    def __init__(self, path: str | os.PathLike, sort_keys: bool = False):
        self.path = Path(path)
        self.sort_keys = sort_keys

    def _line(self, row: dict[str, Any]) -> str:
        return json.dumps(row, sort_keys=self.sort_keys) + "\n"

    def read(self) -> list[dict[str, Any]]:
        """Every row; a torn last line (a kill during append) is dropped, as the next `keep` rewrites the file."""
        if not self.path.exists():
            return []
        lines = list(read_lines(self.path))
        for i, (lineno, _, err) in enumerate(lines):
            if err is not None and i != len(lines) - 1:
                raise ValueError(f"{self.path}: line {lineno} is not JSON (not the last line: not a torn write)")
        return [row for _, row, err in lines if err is None]

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the file with `rows`: a temp file, fsynced, then renamed (a kill leaves the old or the new)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(self._line(r) for r in rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def keep(self, pred) -> None:
        """Keep only the rows `pred` accepts (nothing to do when there is no file)."""
        if self.path.exists():
            self.write([r for r in self.read() if pred(r)])

    def append(self, rows: list[dict[str, Any]]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(self._line(r) for r in rows)
            f.flush()
            os.fsync(f.fileno())
