"""The run directory's on-disk format, a contract the loop, orchestration and reporting all read:

    <out>/<preset>/<arm>/seed<seed>/
        config.json     fully resolved TrainConfig (+ its config_hash), written before training
        metrics.jsonl   one JSON object per step / evaluation (the loop appends)
        eval_records.jsonl  one JSON object per held-out generation (step, problem_id, mode, category, flags)
        rollouts.jsonl  every student completion (step, problem id, text, its grade)
        summary.json    written atomically, last, only when the run finished (complete: true)
        checkpoints/

This module owns the file names, atomic JSON writes, the summary schema, the config.json reader and
the scan that falsify/report read. What to do with a run directory (fresh / resume / skip / refuse)
and running one live in harness.orchestrate.runs.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from policy.config import ConfigError, RunError, TrainConfig
from sandbox.jsonl import read_lines

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
EVAL_RECORDS_FILE = "eval_records.jsonl"   # one row per held-out generation: step, problem, mode, category, flags
CHECKPOINT_DIR = "checkpoints"
ROLLOUTS_FILE = "rollouts.jsonl"   # every student completion: step, problem id, text and its GradeRecord

# summary.json fields; rates are held-out fractions in [0, 1]; kl .. grad_norm are means over the last 25 steps.
SUMMARY_FIELDS: tuple[str, ...] = (
    "arm", "seed", "preset", "complete", "steps", "hack_rate", "pass_rate",
    "kl", "mean_cos", "frac_fired", "grad_norm", "wall_s", "hashes",
)
RATE_FIELDS = ("hack_rate", "pass_rate")
# summary.json's per-loophole-mode record of what trained (not required: runs finished before it have none):
# {mode: {"train_problems": n, "student_rollouts": n, "teacher_rows": n}} summed over every step's groups
BY_MODE_KEY = "by_mode"
HASH_KEYS = ("model", "data", "pool", "v")

_SEED_DIR = re.compile(r"^seed(\d+)$")


def run_dir(out: str | os.PathLike, preset: str, arm: str, seed: int) -> Path:
    return Path(out) / preset / arm / f"seed{seed}"


# --- atomic JSON --------------------------------------------------------------

def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write to a temp file in the same directory, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(o: Any) -> Any:
    if isinstance(o, (tuple, set)):
        return list(o)
    if hasattr(o, "item"):          # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None when there is no file. Raises RunError if it is corrupt."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"corrupt {path}: {e}") from None
    if not isinstance(obj, dict):
        raise RunError(f"corrupt {path}: not a JSON object")
    return obj


# --- summary --------------------------------------------------------------------

def validate_summary(summary: dict[str, Any]) -> None:
    missing = [k for k in SUMMARY_FIELDS if k not in summary]
    if missing:
        raise RunError(f"summary lacks field(s): {', '.join(missing)}")
    for k in RATE_FIELDS:
        v = summary[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (0.0 <= v <= 1.0):
            raise RunError(f"summary {k}={v!r} is not a fraction in [0, 1]")
    if not isinstance(summary["hashes"], dict):
        raise RunError("summary hashes must be a dict")


def write_summary(rdir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Validate and write summary.json atomically. Call last, only when the run finished."""
    summary = dict(summary)
    summary["complete"] = True
    validate_summary(summary)
    return write_json_atomic(Path(rdir) / SUMMARY_FILE, summary)


def read_summary(rdir: str | os.PathLike) -> dict[str, Any] | None:
    """The summary dict, or None when there is none. Raises RunError if it is corrupt."""
    return _read_json_object(Path(rdir) / SUMMARY_FILE)


def is_complete(rdir: str | os.PathLike) -> bool:
    try:
        s = read_summary(rdir)
    except RunError:
        return False
    return bool(s and s.get("complete") is True)


# --- config ---------------------------------------------------------------------

def write_config(rdir: str | os.PathLike, config: TrainConfig) -> Path:
    return write_json_atomic(Path(rdir) / CONFIG_FILE, {**config.to_dict(), "config_hash": config.config_hash()})


def read_config(rdir: str | os.PathLike) -> TrainConfig | None:
    """The stored config (TrainConfig fields only; the loop adds metadata such as hashes), or None.

    Raises RunError if config.json is corrupt or lacks/mistypes fields of this version's TrainConfig."""
    d = _read_json_object(Path(rdir) / CONFIG_FILE)
    if d is None:
        return None
    known = {f.name for f in fields(TrainConfig)}
    try:
        return TrainConfig.from_dict({k: v for k, v in d.items() if k in known})
    except (ConfigError, TypeError) as e:
        raise RunError(f"{Path(rdir) / CONFIG_FILE} does not match this version's TrainConfig: {e}") from None


def read_config_json(rdir: str | os.PathLike) -> dict[str, Any] | None:
    """config.json as the run wrote it (TrainConfig's fields and what the loop added: config_hash, `resolved`), or
    None where it is missing or unreadable: the reports show what a run recorded and pass over what they cannot read
    (read_config is the strict reader, for resuming)."""
    try:
        return _read_json_object(Path(rdir) / CONFIG_FILE)
    except (RunError, OSError):
        return None


def stored_config_hash(rdir: str | os.PathLike) -> str | None:
    """config_hash as recorded when the run started (recomputed for a config.json without one)."""
    d = _read_json_object(Path(rdir) / CONFIG_FILE)
    if d is None:
        return None
    if isinstance(d.get("config_hash"), str):
        return d["config_hash"]
    cfg = read_config(rdir)
    return None if cfg is None else cfg.config_hash()


# --- scanning -------------------------------------------------------------------

@dataclass
class RunRecord:
    preset: str
    arm: str
    seed: int
    path: Path
    summary: dict[str, Any] | None   # set only for complete, valid runs
    reason: str = ""                 # why it is incomplete

    @property
    def complete(self) -> bool:
        return self.summary is not None


def scan_runs(root: str | os.PathLike) -> list[RunRecord]:
    """Every <root>/<preset>/<arm>/seed<N>/ directory, complete or not, sorted."""
    root = Path(root)
    out: list[RunRecord] = []
    if not root.is_dir():
        return out
    for preset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for arm_dir in sorted(p for p in preset_dir.iterdir() if p.is_dir()):
            for sd in sorted(p for p in arm_dir.iterdir() if p.is_dir()):
                m = _SEED_DIR.match(sd.name)
                if not m:
                    continue
                out.append(_record(preset_dir.name, arm_dir.name, int(m.group(1)), sd))
    return out


def _record(preset: str, arm: str, seed: int, path: Path) -> RunRecord:
    rec = RunRecord(preset, arm, seed, path, None)
    try:
        s = read_summary(path)
    except RunError as e:
        rec.reason = str(e)
        return rec
    if s is None:
        rec.reason = "no summary.json (not finished)"
    elif s.get("complete") is not True:
        rec.reason = "summary.json has complete != true"
    else:
        try:
            validate_summary(s)
        except RunError as e:
            rec.reason = str(e)
            return rec
        if (s["arm"], s["seed"], s["preset"]) != (arm, seed, preset):
            rec.reason = (f"summary says {s['preset']}/{s['arm']}/seed{s['seed']}, "
                          f"directory says {preset}/{arm}/seed{seed}")
        else:
            rec.summary = s
    return rec


def read_metrics(rdir: str | os.PathLike, name: str = METRICS_FILE) -> list[dict[str, Any]]:
    """metrics.jsonl rows; a torn last line (crash mid-write) is skipped."""
    path = Path(rdir) / name
    if not path.exists():
        return []
    return [row for _, row, err in read_lines(path) if err is None and isinstance(row, dict)]


def read_eval_records(rdir: str | os.PathLike) -> list[dict[str, Any]]:
    """eval_records.jsonl rows (same reader as metrics.jsonl: a torn last line is skipped)."""
    return read_metrics(rdir, EVAL_RECORDS_FILE)


def finite(x: Any) -> float | None:
    """x as a float, or None for missing / NaN / inf / non-numbers."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def select_preset(records: list[RunRecord], preset: str | None) -> str:
    """--preset if given (must have runs); else the only preset present."""
    present = sorted({r.preset for r in records})
    if preset is not None:
        if preset not in present:
            from harness.presets import get_preset
            get_preset(preset)  # unknown name -> its own error
            raise RunError(f"no runs for preset {preset!r}" + (f"; present: {', '.join(present)}" if present else ""))
        return preset
    if not present:
        raise RunError("no runs found")
    if len(present) > 1:
        raise RunError(f"runs of several presets present ({', '.join(present)}); pick one with --preset")
    return present[0]
