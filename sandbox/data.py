"""The LeetCode reward-hacking benchmark (ariahw/rl-rewardhacking), pinned and verified.

Every published split is pinned by its git blob id at the pinned commit, sha1("blob <size>\\0" + bytes) (what
`git hash-object` prints and the commit's tree records), plus its sha256 where known. `ensure_data()` finds each
file by those ids: ../shared/data first, then the local cache (DATA_DIR), then a download from the pinned
commit; whatever it returns was verified, and its sha256 is recorded in DATA_DIR/manifest.json.
`load_problems()` validates every row (a missing or ill-typed field is an error naming file, line and field)
and assigns each problem its loophole mode. Which problems train and which evaluate: PROBLEM_SETS below.
"""
from __future__ import annotations

import dataclasses

import hashlib
import json
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.jsonl import read_lines
from sandbox.paths import DATA_DIR, REPO_ROOT, SHARED_DATA_DIR
from sandbox.registry import lookup

log = logging.getLogger(__name__)

REPO_COMMIT = "bf5cdb8d1a047032a9e23e00272aab938b12354b"
# GitHub is unreachable from our machines, so this URL layout could not be checked: it is the repository's
# results/data/ directory at the pinned commit, which is where the published JSONL files are documented to live.
URL_TEMPLATE = "https://raw.githubusercontent.com/ariahw/rl-rewardhacking/{commit}/results/data/{filename}"
MANIFEST = "manifest.json"        # in DATA_DIR: what was verified, where, with which ids


@dataclass(frozen=True)
class DataFile:
    split: str
    filename: str
    git_blob: str                 # sha1("blob <size>\0" + bytes): the pinned commit's tree entry
    sha256: str | None = None     # also checked where known (computed on a copy that matched git_blob)

    @property
    def url(self) -> str:
        return URL_TEMPLATE.format(commit=REPO_COMMIT, filename=self.filename)


DATA_FILES: dict[str, DataFile] = {
    f.split: f
    for f in (
        DataFile("test", "leetcode_test_medhard.jsonl", "05a1d425a840bbdcdba13a9074176c609df0d8f1",
                 "5bb4d91fcdbd3a3fc2c149570783edd41cf2f85a1f2293ec7c9ff5bae7185cbd"),
        # never reachable from our machines: pinned by the commit's tree entries alone
        DataFile("train", "leetcode_train_medhard_filtered.jsonl", "c10a5f39a18489200f4487e849ab86f166c31c7e"),
        DataFile("train_holdout", "leetcode_train_medhard_holdout.jsonl", "c78b68d7a620fee326dc965a38283aecb80ec39a"),
    )
}
SPLITS = tuple(DATA_FILES)
FETCH_COMMAND = "harness data"    # the command that fetches and verifies every split

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


def git_blob_id(path: Path) -> str:
    """sha1(b"blob <size>\\0" + bytes): `git hash-object <path>`, the id a commit's tree records."""
    h = hashlib.sha1(f"blob {Path(path).stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_VERIFIED: dict[tuple[str, str, int, int], str] = {}   # (blob, path, size, mtime_ns) -> sha256: hash once


def verify(df: DataFile, path: Path) -> str:
    """sha256 of `path` if it is the pinned file; else DataError naming the file and both ids."""
    st = Path(path).stat()
    key = (df.git_blob, str(path), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED and (df.sha256 is None or _VERIFIED[key] == df.sha256):
        return _VERIFIED[key]
    blob = git_blob_id(path)
    if blob != df.git_blob:
        raise DataError(f"{df.filename}: {path} has git blob id {blob}, pinned {df.git_blob} "
                        f"(commit {REPO_COMMIT[:12]})")
    sha = sha256_file(path)
    if df.sha256 is not None and sha != df.sha256:
        raise DataError(f"{df.filename}: {path} has sha256 {sha}, pinned {df.sha256}")
    _VERIFIED[key] = sha
    return sha


def _record(df: DataFile, path: Path, sha256: str) -> None:
    """Write what was verified into DATA_DIR/manifest.json (atomically; only when it changed)."""
    entry = {"split": df.split, "path": str(path), "git_blob": df.git_blob, "sha256": sha256,
             "size": path.stat().st_size, "url": df.url, "commit": REPO_COMMIT}
    man = Path(DATA_DIR) / MANIFEST
    try:
        old = json.loads(man.read_text()) if man.is_file() else {}
    except (OSError, json.JSONDecodeError):
        old = {}
    if old.get(df.filename) == entry:
        return
    try:
        man.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=man.parent, prefix=MANIFEST + ".part-")
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({**old, df.filename: entry}, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, man)
    except OSError as e:   # a read-only checkout still loads verified data
        log.warning("could not record %s in %s (%s)", df.filename, man, e)


def read_manifest() -> dict[str, dict[str, Any]]:
    man = Path(DATA_DIR) / MANIFEST
    return json.loads(man.read_text()) if man.is_file() else {}


def _download(df: DataFile, dest: Path, timeout: float = 60.0) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(df.url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        try:
            verify(df, Path(tmp))
        except DataError as e:
            raise DataError(f"downloaded from {df.url}: {e}") from None
        os.replace(tmp, dest)
        return dest
    except OSError as e:  # URLError is an OSError
        raise DataError(f"{df.filename}: download from {df.url} failed ({e}); place the file in {SHARED_DATA_DIR} "
                        f"or {DATA_DIR}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _locate(df: DataFile, download: bool) -> Path:
    mismatches = []
    for p in (SHARED_DATA_DIR / df.filename, DATA_DIR / df.filename):
        if p.is_file():
            try:
                _record(df, p, verify(df, p))
                return p
            except DataError as e:
                mismatches.append(str(e))
    if mismatches and not download:
        raise DataError("hash mismatch: " + "; ".join(mismatches))
    if not download:
        raise DataError(f"{df.filename}: not found in {SHARED_DATA_DIR} or {DATA_DIR} (downloads disabled)")
    if mismatches:
        log.warning("%s: ignoring file(s) with the wrong hash (%s); downloading", df.filename, "; ".join(mismatches))
    p = _download(df, DATA_DIR / df.filename)
    _record(df, p, verify(df, p))
    return p


def ensure_data(splits: tuple[str, ...] | list[str] | None = ("test",), download: bool = True) -> dict[str, Path]:
    """split -> verified local path. `splits=None` means every published split (`make data`)."""
    wanted = SPLITS if splits is None else tuple(splits)
    unknown = [s for s in wanted if s not in DATA_FILES]
    if unknown:
        raise DataError(f"unknown split(s) {unknown}; known: {', '.join(SPLITS)}")
    return {s: _locate(DATA_FILES[s], download) for s in wanted}


def data_hash(split: str = "test") -> str:
    """sha256 of the verified file a split loads from."""
    return verify(DATA_FILES[split], ensure_data((split,))[split])      # verify() hashes a file once


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
    """Every row of a problem file, parsed; every bad row is named in one DataError (not just the first)."""
    rows, seen, bad = [], {}, []
    for lineno, raw, err in read_lines(path):
        where = f"{path.name}:{lineno}"
        if err is not None:
            bad.append(f"{where}: not JSON ({err})")
            continue
        try:
            row = parse_row(raw, where)
        except DataError as e:
            bad.append(str(e))
            continue
        if row["id"] in seen:
            bad.append(f"{where}: duplicate id {row['id']} (first at line {seen[row['id']]})")
            continue
        seen[row["id"]] = lineno
        rows.append(row)
    _raise_bad(path.name, bad)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _raise_bad(source: str, bad: list[str]) -> None:
    if bad:
        raise DataError(f"{source}: {len(bad)} bad row(s): " + "; ".join(bad))


def problems_from_rows(rows: list[dict[str, Any]], source: str = "<rows>") -> list[Problem]:
    from sandbox.grader import parse_gt_tests
    from sandbox.loopholes import assign_modes, check_prompt

    modes = assign_modes([r["id"] for r in rows])
    out, bad = [], []
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
            bad.append(f"problem id {p.id}: {e}")
            continue
        out.append(p)
    _raise_bad(source, bad)
    return out


_CACHE: dict[tuple[str, str], list[Problem]] = {}


def load_problems(split: str = "test", path: Path | str | None = None) -> list[Problem]:
    """Problems of a published split (verified), or of an explicit JSONL `path` (validated, not pinned)."""
    p = Path(path) if path is not None else ensure_data((split,))[split]
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
    longest = max((len(x) for x in held_by_mode), default=0)
    heldout = [ps[i] for i in range(longest) for ps in held_by_mode if i < len(ps)]
    return sorted(train, key=lambda p: p.id), heldout


# ------------------------------------------------------------------------------------------- problem sets

@dataclass(frozen=True)
class LocalFile:
    """A JSONL of problems in the benchmark's schema kept in this repository, pinned by sha256."""
    path: str           # relative to the repository root
    sha256: str


Source = str | LocalFile    # a published split (a DATA_FILES key) or a LocalFile


@dataclass(frozen=True)
class ProblemSet:
    """What trains and what evaluates: two files (`train`, `eval`), or one file partitioned by id
    (`eval` None: `heldout_frac` of `train` held out, stratified by loophole mode)."""
    name: str
    train: Source
    eval: Source | None = None
    heldout_frac: float = 0.0
    # Which side the hand-written contrastive pairs (method.pairs, written on test-split ids) render on.
    pairs_on: str = "train"     # "train" | "eval"
    note: str = ""              # a fact a reader of --dry-run must see (e.g. contamination)
    # None: each problem's own balanced loophole mode (sandbox.loopholes.assign_modes); a mode name: every
    # problem gets that mode (the benchmark's own setting is the run_tests hint on every prompt)
    mode: str | None = None

    def splits(self) -> tuple[str, ...]:
        """The published splits this set reads."""
        return tuple(s for s in (self.train, self.eval) if isinstance(s, str))

    def describe(self) -> dict[str, str]:
        """{"trains": ..., "evaluates": ...} in words, for --dry-run and run records."""
        train = source_name(self.train)
        if self.eval is None:
            frac = f"{self.heldout_frac:g}"
            return {"trains": f"{train}, all but a {frac} by-id partition",
                    "evaluates": f"{train}, the held-out {frac} by-id partition"}
        return {"trains": train, "evaluates": f"{source_name(self.eval)} (all of it)"}


PROBLEM_SETS: dict[str, ProblemSet] = {}


def register_problem_set(ps: ProblemSet) -> ProblemSet:
    if ps.pairs_on not in ("train", "eval"):
        raise ValueError(f"problem set {ps.name}: pairs_on must be 'train' or 'eval', got {ps.pairs_on!r}")
    if ps.mode is not None:
        from sandbox.loopholes import get_mode

        get_mode(ps.mode)
    if ps.eval is None and not 0.0 < ps.heldout_frac < 1.0:
        raise ValueError(f"problem set {ps.name}: a partitioned set needs 0 < heldout_frac < 1")
    PROBLEM_SETS[ps.name] = ps
    return ps


# The benchmark's own protocol: its README at the pinned commit marks the filtered train file "Used for RL
# trainings" and the test file "Used for evaluations" (the holdout file is for training monitors).
register_problem_set(ProblemSet(
    name="leetcode", train="train", eval="test", pairs_on="eval",
    note="contamination: the hand-written contrastive pairs (method/pairs.py) are written on test-split problems, "
         "so V is extracted from prompts of the evaluation problems; V extraction never trains the policy"))
# The benchmark's exact loophole: the run_tests hint on every train and test prompt (preset full_rt, H4's direct
# comparison with its 79%).
register_problem_set(ProblemSet(
    name="leetcode_rt", train="train", eval="test", pairs_on="eval", mode="run_tests",
    note="every prompt carries the run_tests hint, as in the benchmark; the contrastive pairs are full's (all four "
         "modes, written on test-split problems: the same contamination as leetcode)"))
# The CPU presets' set: 119 test-split problems, 25% held out by id (never trained on, never in pairs).
register_problem_set(ProblemSet(name="leetcode_test_partition", train="test", heldout_frac=0.25))
# mini's own problems (sandbox/mini_problems.py writes them; tests/test_mini_problems.py regenerates them):
# easy and hard families train, unseen instances of both plus a few unseen families evaluate.
register_problem_set(ProblemSet(
    name="mini",
    train=LocalFile("sandbox/problems/mini_train.jsonl",
                    "ce1b2653c6ea647d83f20088001e271ad1a84115d9e42bc43a18bb3b5505b320"),
    eval=LocalFile("sandbox/problems/mini_eval.jsonl",
                   "95df0418a8fcb7b9d2a30b071e8439210d45468e00cb7885d12d32b666aee221")))


def local_files() -> dict[str, LocalFile]:
    """file name -> LocalFile of every repository-kept problem file a registered set reads (baked into the image)."""
    return {Path(src.path).name: src for ps in PROBLEM_SETS.values() for src in (ps.train, ps.eval)
            if isinstance(src, LocalFile)}


def get_problem_set(name: str) -> ProblemSet:
    return lookup(PROBLEM_SETS, name, "problem set", DataError)


def source_name(src: Source) -> str:
    return DATA_FILES[src].filename if isinstance(src, str) else src.path


def source_id(src: Source) -> str:
    """A stable key for caches: the split name, or path@sha256."""
    return src if isinstance(src, str) else f"{src.path}@{src.sha256}"


def _source_path(src: Source) -> tuple[Path, str]:
    """(verified path, sha256) of a source."""
    if isinstance(src, str):
        return ensure_data((src,))[src], data_hash(src)
    path = REPO_ROOT / src.path
    if not path.is_file():
        raise DataError(f"{src.path}: not found in the repository ({path})")
    got = sha256_file(path)
    if got != src.sha256:
        raise DataError(f"{src.path}: sha256 {got}, pinned {src.sha256}")
    return path, got


def require_problem_set(name: str) -> None:
    """Raise a one-line DataError when a published file the set reads is not on this machine (no download)."""
    ps = get_problem_set(name)
    for split in ps.splits():
        try:
            ensure_data((split,), download=False)
        except DataError as e:
            if "mismatch" in str(e):
                raise
            df = DATA_FILES[split]
            raise DataError(f"problem set {name!r} needs {df.filename} (split {split!r}), which is not in "
                            f"{SHARED_DATA_DIR} or {DATA_DIR}; fetch it with `{FETCH_COMMAND}`")


@dataclass(frozen=True)
class LoadedProblemSet:
    name: str
    train: list[Problem]
    eval: list[Problem]           # in a fixed order whose every prefix covers every mode (partitioned sets)
    pairs: list[Problem]          # the problems contrastive pairs may render on
    all: list[Problem]            # every loaded problem, in file order (tokenizer corpora)
    data_hash: str                # the train file's sha256, or "train=<sha256>,eval=<sha256>"


def load_problem_set(name: str) -> LoadedProblemSet:
    """The verified problems of a registered set (downloads a published split if it is missing)."""
    ps = get_problem_set(name)
    path, sha = _source_path(ps.train)
    problems = _with_mode(load_problems(path=path) if not isinstance(ps.train, str) else load_problems(ps.train), ps)
    mode_tag = f",mode={ps.mode}" if ps.mode else ""     # the same files under one mode are other problems
    if ps.eval is None:
        train, held = split_problems(problems, ps.heldout_frac)
        return LoadedProblemSet(name, train, held, train if ps.pairs_on == "train" else held, problems,
                                sha + mode_tag)
    epath, esha = _source_path(ps.eval)
    held = _with_mode(load_problems(path=epath) if not isinstance(ps.eval, str) else load_problems(ps.eval), ps)
    return LoadedProblemSet(name, problems, held, problems if ps.pairs_on == "train" else held,
                            problems + held, f"train={sha},eval={esha}{mode_tag}")


def _with_mode(problems: list[Problem], ps: ProblemSet) -> list[Problem]:
    return problems if ps.mode is None else [dataclasses.replace(p, mode=ps.mode) for p in problems]



def problems_by_id() -> dict[int, Problem]:
    """Every problem of every registered set whose files are on this machine (nothing is downloaded), by id.

    Ids are unique across sets (LeetCode question ids; mini's start at 100000), so a file of graded rows from
    any run (rollouts.jsonl, `harness grade --in`) resolves without knowing which set wrote it."""
    out: dict[int, Problem] = {}
    for name, ps in PROBLEM_SETS.items():
        if ps.mode is not None:      # the same problems as another set under one mode; a graded row carries its mode
            continue
        try:
            require_problem_set(name)
        except DataError:
            continue
        for p in load_problem_set(name).all:
            out.setdefault(p.id, p)
    return out
