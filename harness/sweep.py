"""The run matrix: arms x seeds for one preset, run locally one after another or as Ray tasks.

Every job is planned (and every conflict raised) before any job starts, so a bad out dir
fails in a second, not after hours. Complete runs are skipped, interrupted ones resumed.
Jobs go seed-major (all arms on seed 41, then 42, ...) so a partial sweep already pairs seeds.
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.config import TrainConfig, resolve_config
from harness.paths import ARTIFACTS_DIR, DATA_DIR, SHARED_DATA_DIR
from harness.runs import (execute, is_artifact_error, plan_action, preflight, prepare_run_dir, read_summary,
                          run_dir)

EXECUTORS = ("local", "ray")


@dataclass
class Job:
    arm: str
    seed: int
    config: TrainConfig
    path: Path
    action: str                       # fresh | overwrite | resume | skip
    status: str = "pending"           # pending | done | skipped | failed
    error: str = ""
    summary: dict[str, Any] | None = field(default=None, repr=False)
    wall_s: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.config.preset}/{self.arm}/seed{self.seed}"


def plan(preset: str, arms: list[str], seeds: list[int], out: str | Path, overrides: dict[str, Any] | None = None,
         *, resume: bool = True, force: bool = False) -> list[Job]:
    """Resolve every config and decide every action (raises RunError on the first conflict; touches nothing)."""
    jobs, checked = [], set()
    for seed in seeds:
        for arm in arms:
            config = resolve_config(preset, arm, seed, overrides)
            if (config.model, config.teacher_pool) not in checked:
                preflight(config)
                checked.add((config.model, config.teacher_pool))
            rd = run_dir(out, preset, arm, seed)
            jobs.append(Job(arm, seed, config, rd, plan_action(rd, config, resume=resume, force=force)))
    return jobs


def _prepare(job: Job, force: bool) -> bool:
    """Create / wipe the run dir as planned; False when the job is to be skipped."""
    if not _prepare_skip(job):
        return False
    prepare_run_dir(job.path, job.config, resume=job.action == "resume", force=force)
    return True


def _prepare_skip(job: Job) -> bool:
    """Mark a planned skip (reading its summary for the status table); True when the job must run."""
    if job.action == "skip":
        job.status, job.summary = "skipped", read_summary(job.path)
        return False
    return True


def run_local(jobs: list[Job], *, force: bool = False, progress: bool = True, console=None,
              fail_fast: bool = False, tracebacks: bool = False,
              train_fn: Callable[..., dict] = execute) -> list[Job]:
    """One job after another in this process; a failed job is recorded and the sweep goes on (unless fail_fast).

    A missing / corrupt artifact is reported in one line (its traceback only with `tracebacks`); any other
    failure always shows its traceback."""
    todo = [j for j in jobs if _prepare_skip(j)]
    for i, job in enumerate(todo, 1):
        if console is not None:
            console.rule(f"[{i}/{len(todo)}] {job.name} ({job.action})")
        t0 = time.time()
        try:
            _prepare(job, force)
            job.summary = train_fn(job.config, job.path, resume=job.action == "resume", progress=progress)
            job.status = "done"
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - one broken run must not lose the rest of the matrix
            job.status, job.error = "failed", f"{type(e).__name__}: {e}"
            if console is not None:
                if tracebacks or not is_artifact_error(e):
                    console.print(f"{job.name} failed:\n{traceback.format_exc()}", markup=False)
                else:
                    console.print(f"{job.name} failed: {job.error} (harness --debug for the traceback)", markup=False)
            if fail_fast:
                raise
        job.wall_s = time.time() - t0
    return jobs


# --- Ray ------------------------------------------------------------------------

def _ray_job(config_dict: dict[str, Any], path: str, resume: bool) -> dict[str, Any]:
    """Runs inside a Ray worker: the same `execute` as local, no live display."""
    return execute(TrainConfig.from_dict(config_dict), Path(path), resume=resume, progress=False)


def _env_for_workers() -> dict[str, str]:
    """Workers must see the same data / artifact caches (a shared filesystem on a real cluster)."""
    env = {"RH_DATA_DIR": str(Path(DATA_DIR).resolve()), "RH_ARTIFACTS_DIR": str(Path(ARTIFACTS_DIR).resolve()),
           "RH_SHARED_DATA_DIR": str(Path(SHARED_DATA_DIR).resolve()), "TOKENIZERS_PARALLELISM": "false"}
    return env


def run_ray(jobs: list[Job], address: str | None, *, force: bool = False, console=None,
            task_fn: Callable[[dict[str, Any], str, bool], dict[str, Any]] = _ray_job,
            init_kwargs: dict[str, Any] | None = None) -> list[Job]:
    """Each arm x seed as one Ray task (num_gpus=1 when the cluster has GPUs) on the cluster at `address`.

    `address=None` starts a local Ray instance. Run dirs are prepared here, by the driver; the cluster's
    workers must see `--out` and the artifact caches at the same absolute paths (a shared filesystem)
    and have this package installed (the image).
    """
    try:
        import ray
    except ImportError:
        from harness.runs import RunError
        raise RunError("--executor ray needs the optional extra: pip install -e '.[ray]'") from None

    if not ray.is_initialized():
        kwargs = dict(init_kwargs or {})
        kwargs.setdefault("runtime_env", {"env_vars": _env_for_workers()})
        kwargs.setdefault("include_dashboard", False)
        kwargs.setdefault("log_to_driver", True)
        ray.init(address=address, **kwargs)
    gpus = ray.cluster_resources().get("GPU", 0)
    remote = ray.remote(num_gpus=1 if gpus > 0 else 0, max_retries=0)(task_fn)
    if console is not None:
        console.print(f"ray: {ray.cluster_resources().get('CPU', 0):g} CPUs, {gpus:g} GPUs; "
                      f"{'1 GPU' if gpus else 'no GPU'} per task")

    pending: dict[Any, Job] = {}
    t0: dict[str, float] = {}
    for job in jobs:
        if not _prepare(job, force):
            continue
        t0[job.name] = time.time()
        pending[remote.remote(job.config.to_dict(), str(job.path.resolve()), job.action == "resume")] = job

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    with Progress(TextColumn("ray sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=console is None) as bar:
        task = bar.add_task("ray", total=len(pending))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ref = ready[0]
            job = pending.pop(ref)
            try:
                job.summary = ray.get(ref)
                job.status = "done"
            except Exception as e:  # noqa: BLE001 - a failed task is reported with the others
                job.status, job.error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[-1]}"
            job.wall_s = time.time() - t0[job.name]
            bar.advance(task)
    return jobs


def status_rows(jobs: list[Job]) -> list[list[str]]:
    rows = []
    for j in jobs:
        s = j.summary or {}
        hack = f"{100 * s['hack_rate']:.1f}" if "hack_rate" in s else "—"
        pss = f"{100 * s['pass_rate']:.1f}" if "pass_rate" in s else "—"
        rows.append([j.arm, str(j.seed), j.action, j.status, hack, pss,
                     f"{j.wall_s:.0f}" if j.wall_s else "—", j.error])
    return rows


STATUS_HEADERS = ["arm", "seed", "action", "status", "hack %", "pass %", "wall s", "error"]
