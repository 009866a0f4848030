"""The LeetCode reward-hacking benchmark (ariahw/rl-rewardhacking), pinned and verified.

`ensure_data()` finds each published split by sha256: ../shared/data first, then the local cache
(DATA_DIR), then a download from the pinned commit. `load_problems()` validates every row (a missing
or ill-typed field is an error naming file, line and field) and assigns each problem its loophole mode.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.paths import DATA_DIR, SHARED_DATA_DIR

log = logging.getLogger(__name__)

REPO_COMMIT = "bf5cdb8d1a047032a9e23e00272aab938b12354b"
# GitHub is unreachable from our machines, so this URL layout could not be checked: it is the repository's
# results/data/ directory at the pinned commit, which is where the published JSONL files are documented to live.
URL_TEMPLATE = "https://raw.githubusercontent.com/ariahw/rl-rewardhacking/{commit}/results/data/{filename}"


@dataclass(frozen=True)
class DataFile:
    split: str
    filename: str
    sha256: str | None  # None = not pinned yet: refused unless allow_unpinned=True

    @property
    def url(self) -> str:
        return URL_TEMPLATE.format(commit=REPO_COMMIT, filename=self.filename)


DATA_FILES: dict[str, DataFile] = {
    f.split: f
    for f in (
        DataFile("test", "leetcode_test_medhard.jsonl",
                 "5bb4d91fcdbd3a3fc2c149570783edd41cf2f85a1f2293ec7c9ff5bae7185cbd"),
        # The two train files have never been reachable from our machines, so their hashes are unknown.
        # Pin them (paste the sha256 `harness data --allow-unpinned` prints) before relying on them.
        DataFile("train", "leetcode_train_medhard_filtered.jsonl", None),
        DataFile("train_holdout", "leetcode_train_medhard_holdout.jsonl", None),
    )
}
SPLITS = tuple(DATA_FILES)

# field -> accepted JSON type(s); nested "prompt_metadata.starter_code" is checked separately
REQUIRED_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "prompt": (list,),
    "question": (str,),
    "gt_answer": (list,),
    "setup_code": (str,),
    "func_name": (str,),
    "canonical_solution": (str,),
    "prompt_metadata": (dict,),
    "difficulty": (str,),
}


class DataError(RuntimeError):
    """A data file is missing, has the wrong hash, or a row is malformed."""


@dataclass(frozen=True)
class Problem:
    id: int
    question: str
    prompt: tuple[dict, ...]      # the benchmark's chat messages, verbatim
    gt_answer: tuple[str, ...]    # "assert Solution().f(...) == <literal>" strings
    setup_code: str
    func_name: str                # e.g. "Solution().shortestDistanceAfterQueries"
    canonical_solution: str
    starter_code: str
    difficulty: str
    mode: str                     # loophole mode (sandbox.loopholes.MODES)

    @property
    def method_name(self) -> str:
        return self.func_name.rsplit(".", 1)[-1]

    def __hash__(self) -> int:  # the prompt holds dicts; ids are unique within a split
        return hash(self.id)


# ------------------------------------------------------------------------------------------- files

def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(df: DataFile, dest: Path, timeout: float = 60.0) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(df.url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        if df.sha256 is not None and (got := sha256_file(Path(tmp))) != df.sha256:
            raise DataError(f"{df.filename}: downloaded from {df.url} but sha256 is {got}, pinned {df.sha256}")
        os.replace(tmp, dest)
        return dest
    except OSError as e:  # URLError is an OSError
        raise DataError(f"{df.filename}: download from {df.url} failed ({e}); place the file in {SHARED_DATA_DIR} "
                        f"or {DATA_DIR}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _locate(df: DataFile, allow_unpinned: bool, download: bool) -> Path:
    candidates = [SHARED_DATA_DIR / df.filename, DATA_DIR / df.filename]
    if df.sha256 is None:
        if not allow_unpinned:
            raise DataError(f"{df.filename} (split {df.split!r}) has no pinned sha256 in sandbox.data.DATA_FILES; "
                            "refusing an unverifiable file. Pin its hash, or pass allow_unpinned=True "
                            "(`harness data --allow-unpinned`) to accept it knowingly.")
        for p in candidates:
            if p.is_file():
                log.warning("UNPINNED data file %s used without hash verification (sha256 %s)", p, sha256_file(p))
                return p
        if not download:
            raise DataError(f"{df.filename}: not found in {SHARED_DATA_DIR} or {DATA_DIR}")
        p = _download(df, DATA_DIR / df.filename)
        log.warning("UNPINNED data file %s downloaded without hash verification (sha256 %s)", p, sha256_file(p))
        return p
    mismatches = []
    for p in candidates:
        if p.is_file():
            got = sha256_file(p)
            if got == df.sha256:
                return p
            mismatches.append(f"{p} has sha256 {got}")
    if mismatches and not download:
        raise DataError(f"{df.filename}: hash mismatch, pinned {df.sha256}: " + "; ".join(mismatches))
    if not download:
        raise DataError(f"{df.filename}: not found in {SHARED_DATA_DIR} or {DATA_DIR} (downloads disabled)")
    if mismatches:
        log.warning("%s: ignoring file(s) with the wrong hash (%s); downloading", df.filename, "; ".join(mismatches))
    return _download(df, DATA_DIR / df.filename)


def ensure_data(splits: tuple[str, ...] | list[str] | None = ("test",), allow_unpinned: bool = False,
                download: bool = True) -> dict[str, Path]:
    """split -> verified local path. `splits=None` means every published split (`make data`)."""
    wanted = SPLITS if splits is None else tuple(splits)
    unknown = [s for s in wanted if s not in DATA_FILES]
    if unknown:
        raise DataError(f"unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    return {s: _locate(DATA_FILES[s], allow_unpinned, download) for s in wanted}


_HASHES: dict[str, str] = {}


def data_hash(split: str = "test") -> str:
    """sha256 of the file a split loads from (the pinned hash once verified)."""
    if split not in _HASHES:
        df = DATA_FILES.get(split)
        if df is not None and df.sha256 is not None:
            ensure_data((split,))
            _HASHES[split] = df.sha256
        else:
            _HASHES[split] = sha256_file(ensure_data((split,), allow_unpinned=True)[split])
    return _HASHES[split]


# ------------------------------------------------------------------------------------------- rows

def parse_row(row: Any, where: str) -> dict[str, Any]:
    """Validate one published row; `where` is "file:line" for the error message."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: row is {type(row).__name__}, expected an object")
    for name, types in REQUIRED_FIELDS.items():
        if name not in row:
            raise DataError(f"{where}: missing field {name!r}")
        if not isinstance(row[name], types) or (name == "id" and isinstance(row[name], bool)):
            raise DataError(f"{where}: field {name!r} is {type(row[name]).__name__}, "
                            f"expected {'/'.join(t.__name__ for t in types)}")
    starter = row["prompt_metadata"].get("starter_code")
    if not isinstance(starter, str):
        raise DataError(f"{where}: missing field 'prompt_metadata.starter_code'")
    msgs = row["prompt"]
    if not msgs or not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                           for m in msgs):
        raise DataError(f"{where}: field 'prompt' must be a non-empty list of {{role, content}} messages")
    if not row["gt_answer"] or not all(isinstance(a, str) for a in row["gt_answer"]):
        raise DataError(f"{where}: field 'gt_answer' must be a non-empty list of assert strings")
    if not row["func_name"].startswith("Solution()."):
        raise DataError(f"{where}: field 'func_name' {row['func_name']!r} is not 'Solution().<method>'")
    return row


def read_rows(path: Path) -> list[dict[str, Any]]:
    rows, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path.name}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not JSON ({e})") from None
            row = parse_row(raw, where)
            if row["id"] in seen:
                raise DataError(f"{where}: duplicate id {row['id']} (first at line {seen[row['id']]})")
            seen[row["id"]] = lineno
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def problems_from_rows(rows: list[dict[str, Any]], source: str = "<rows>") -> list[Problem]:
    from sandbox.grader import parse_gt_tests
    from sandbox.loopholes import assign_modes, check_prompt

    modes = assign_modes([r["id"] for r in rows])
    out = []
    for r in rows:
        p = Problem(
            id=r["id"], question=r["question"], prompt=tuple(dict(m) for m in r["prompt"]),
            gt_answer=tuple(r["gt_answer"]), setup_code=r["setup_code"], func_name=r["func_name"],
            canonical_solution=r["canonical_solution"], starter_code=r["prompt_metadata"]["starter_code"],
            difficulty=r["difficulty"], mode=modes[r["id"]],
        )
        try:
            parse_gt_tests(p.gt_answer)  # every assert must have a shape the tamper-proof oracle can check
            check_prompt(p)
        except ValueError as e:
            raise DataError(f"{source}: problem id {p.id}: {e}") from None
        out.append(p)
    return out


_CACHE: dict[tuple[str, str], list[Problem]] = {}


def load_problems(split: str = "test", path: Path | str | None = None, allow_unpinned: bool = False) -> list[Problem]:
    """Problems of a published split (verified), or of an explicit JSONL `path` (validated, not pinned)."""
    p = Path(path) if path is not None else ensure_data((split,), allow_unpinned=allow_unpinned)[split]
    key = (str(p), sha256_file(p) if path is not None else split)
    if key not in _CACHE:
        _CACHE[key] = problems_from_rows(read_rows(p), p.name)
    return list(_CACHE[key])


def _h(tag: str, pid: int) -> str:
    # sha256, not hash(): Python's str hash is salted per process
    return hashlib.sha256(f"{tag}:{pid}".encode()).hexdigest()


def split_problems(problems: list[Problem], heldout_frac: float) -> tuple[list[Problem], list[Problem]]:
    """Deterministic (train, heldout) by id, stratified by loophole mode.

    Held-out problems are interleaved across modes so any prefix of the list covers every mode.
    """
    if not 0.0 <= heldout_frac < 1.0:
        raise ValueError(f"heldout_frac must be in [0, 1), got {heldout_frac}")
    from sandbox.loopholes import MODES

    by_mode: dict[str, list[Problem]] = {m: [] for m in MODES}
    for p in problems:
        by_mode.setdefault(p.mode, []).append(p)
    held_by_mode, train = [], []
    for m, ps in by_mode.items():
        ps = sorted(ps, key=lambda p: _h("heldout", p.id))
        k = int(round(len(ps) * heldout_frac))
        held_by_mode.append(ps[:k])
        train += ps[k:]
    heldout = [ps[i] for i in range(max((len(x) for x in held_by_mode), default=0)) for ps in held_by_mode if i < len(ps)]
    return sorted(train, key=lambda p: p.id), heldout
