"""The artifact cache: every built artifact (base model, SVD basis, V, Rebound concept, teacher pool) lives under
ARTIFACTS_DIR/<kind>/ in a file named by the sha256 of everything it depends on, written atomically (a temp file
in the same directory, then a rename), so concurrent runs never read half a file and a changed input is a new
file, never a stale hit."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from sandbox.paths import ARTIFACTS_DIR


def key_sha256(key: Any) -> str:
    """The full sha256 (hex) of a JSON-able key (sorted keys; anything else by str())."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def key_digest(key: Any) -> str:
    """The 16-hex digest that names an artifact built from `key`."""
    return key_sha256(key)[:16]


def artifact_path(kind: str, name: str, artifacts_dir: str | os.PathLike | None = None) -> Path:
    """ARTIFACTS_DIR/<kind>/<name> (or under `artifacts_dir`)."""
    return Path(artifacts_dir or ARTIFACTS_DIR) / kind / name


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` to a temp file beside `path` (this process's own), then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
