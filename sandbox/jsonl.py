"""The one JSONL file: append-only rows, fsynced, with atomic rewrites (run logs, rollouts, metrics)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable


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
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if i != len(lines) - 1:
                    raise ValueError(f"{self.path}: line {i + 1} is not JSON (not the last line: not a torn write)")
        return rows

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
