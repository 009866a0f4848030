"""What to do with one run directory, and running one: the "same config?" check that refuses to mix runs
(plan_action / prepare_run_dir), execute (train one arm x seed) and preflight (a config's artifacts exist).

The directory's on-disk format (file names, summary schema, readers) is harness.rundir.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from harness.rundir import (BY_MODE_KEY, CHECKPOINT_DIR, METRICS_FILE, is_complete, read_config, read_summary,
                            stored_config_hash, write_config, write_summary)
from policy.config import RunError
from policy.config import TrainConfig

# What a missing / corrupt artifact (pool, V file, base model, data) raises in the pipeline code: the CLI
# shows these as one line (with --debug, the traceback); anything else keeps its traceback.
ARTIFACT_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)   # incl. FileNotFound, JSONDecodeError


def is_artifact_error(e: BaseException) -> bool:
    return isinstance(e, ARTIFACT_ERRORS) or type(e).__name__ in ("SafetensorError", "HeaderTooLarge")


def config_diff(a: TrainConfig, b: TrainConfig) -> dict[str, tuple[Any, Any]]:
    da, db = a.to_dict(), b.to_dict()
    return {k: (da[k], db[k]) for k in da if da[k] != db[k]}


# --- one run directory ----------------------------------------------------------


def plan_action(rdir: str | os.PathLike, config: TrainConfig, *, resume: bool, force: bool) -> str:
    """What to do with `rdir` for `config`, without touching it: "fresh", "overwrite", "resume" or "skip".

    - no config.json            -> fresh (an empty or absent dir), RunError if it holds files, unless force
    - other config / corrupt    -> RunError, unless force (then overwrite)
    - same config, complete     -> skip, unless force (then overwrite); RunError for a lomo run (pool_modes)
                                   finished before the held mode trained (no by_mode in its summary)
    - same config, no progress  -> fresh (only config.json: it never got going)
    - same config, partial      -> resume if `resume`, overwrite if force, else RunError
    """
    rdir = Path(rdir)
    try:
        stored_hash = stored_config_hash(rdir)
    except RunError as e:
        if force:
            return "overwrite"
        raise RunError(f"{e}; pass --force to overwrite {rdir}") from None
    if stored_hash is None:
        if rdir.exists() and any(rdir.iterdir()):   # not ours to reuse: we always write config.json first
            if force:
                return "overwrite"
            raise RunError(f"{rdir} holds files but no config.json; pass --force to overwrite it")
        return "fresh"
    if stored_hash != config.config_hash():
        if force:
            return "overwrite"
        try:
            diff = config_diff(read_config(rdir), config)
            shown = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in list(diff.items())[:4])
        except RunError as e:
            shown = str(e)
        raise RunError(f"{rdir} holds a run with a different config ({shown or 'config_hash differs'}); "
                       f"use another --out or pass --force to overwrite it")
    if force:
        return "overwrite"
    if is_complete(rdir):
        if config.pool_modes and BY_MODE_KEY not in (read_summary(rdir) or {}):
            # same config hash, but finished before leave-one-mode-out trained on the held mode (issue 17)
            raise RunError(f"{rdir} holds a leave-one-mode-out run from before held-mode prompts were trained on "
                           f"(its summary has no {BY_MODE_KEY}); pass --force to retrain it or use another --out")
        return "skip"
    if not _has_progress(rdir):
        return "fresh"                                # config.json only: it never got going
    if resume:
        return "resume"
    raise RunError(f"{rdir} holds a partial run; pass --resume to continue it or --force to restart it")


def _has_progress(rdir: Path) -> bool:
    metrics = rdir / METRICS_FILE
    ckpt = rdir / CHECKPOINT_DIR
    return (metrics.exists() and metrics.stat().st_size > 0) or (ckpt.is_dir() and any(ckpt.iterdir()))


def prepare_run_dir(rdir: str | os.PathLike, config: TrainConfig, *, resume: bool, force: bool) -> str:
    """Apply plan_action: wipe on overwrite, write config.json on a fresh start. Returns the action."""
    rdir = Path(rdir)
    action = plan_action(rdir, config, resume=resume, force=force)
    if action == "overwrite":
        _wipe(rdir)
    if action in ("fresh", "overwrite"):
        rdir.mkdir(parents=True, exist_ok=True)
        write_config(rdir, config)
    return action


def _wipe(rdir: Path) -> None:
    if rdir.exists():
        shutil.rmtree(rdir)


# --- execution ------------------------------------------------------------------

def execute(config: TrainConfig, rdir: str | os.PathLike, *, resume: bool, progress: bool = True) -> dict[str, Any]:
    """Train one arm x seed into `rdir` (already prepared) and make sure summary.json is written last."""
    from harness.train.loop import train  # heavy import (torch, transformers): only when training

    rdir = Path(rdir)
    summary = train(config, rdir, resume=resume, progress=progress)
    on_disk = read_summary(rdir)
    if not (on_disk and on_disk.get("complete") is True):
        if not isinstance(summary, dict):
            raise RunError(f"train() returned no summary for {rdir}")
        write_summary(rdir, summary)
        on_disk = read_summary(rdir)
    return on_disk


def preflight(config: TrainConfig) -> None:
    """Fail in a second, not an hour in: file artifacts a config names must exist (and parse, where we can tell)."""
    if config.teacher_pool != "builtin":
        path = Path(config.teacher_pool)
        if not path.is_file():
            raise RunError(f"teacher pool {path} not found (teacher_pool={config.teacher_pool!r}); "
                           f"build one with `harness build-pool` or use teacher_pool=builtin")
        try:
            from sandbox.pool import load_pool
        except ImportError:
            load_pool = None
        if load_pool is not None:
            try:
                load_pool(path)
            except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt artifact
                raise RunError(f"teacher pool {path} is corrupt: {type(e).__name__}: {e}") from None
    model = config.model
    looks_local = model.startswith(("/", "./", "../", "~")) or Path(model).expanduser().exists()
    if looks_local and not (Path(model).expanduser() / "config.json").is_file():
        raise RunError(f"model directory {model} has no config.json (not a save_pretrained directory)")
