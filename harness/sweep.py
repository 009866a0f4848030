"""The run matrix: arms x seeds for one preset, run locally (one after another, or N at a time as
separate processes) or as Ray tasks.

Every job is planned (and every conflict raised) before any job starts, so a bad out dir
fails in a second, not after hours. Complete runs are skipped, interrupted ones resumed.
Jobs go seed-major (all arms on seed 41, then 42, ...) so a partial sweep already pairs seeds.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
from collections import deque
from multiprocessing.connection import wait as mp_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.config import TrainConfig, resolve_config
from harness.paths import ARTIFACTS_DIR, DATA_DIR, SHARED_DATA_DIR
from harness.runs import (METRICS_FILE, execute, is_artifact_error, plan_action, preflight, prepare_run_dir,
                          read_summary, run_dir)

EXECUTORS = ("local", "ray")
LOG_FILE = "run.log"                  # <run dir>/run.log: a parallel worker's stdout + stderr (appended per session)


@dataclass
class Job:
    arm: str
    seed: int
    config: TrainConfig
    path: Path
    action: str                       # fresh | overwrite | resume | skip
    status: str = "pending"           # pending | done | skipped | failed | interrupted (parallel: stopped by us)
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
              train_fn: Callable[..., dict] = execute, n_jobs: int = 1) -> list[Job]:
    """One job after another in this process; a failed job is recorded and the sweep goes on (unless fail_fast).

    A missing / corrupt artifact is reported in one line (its traceback only with `tracebacks`); any other
    failure always shows its traceback. `n_jobs` > 1 runs that many jobs at a time in worker processes
    (run_parallel); `train_fn` must then be picklable (a module-level function)."""
    if n_jobs > 1:
        return run_parallel(jobs, n_jobs, force=force, progress=progress, console=console, fail_fast=fail_fast,
                            tracebacks=tracebacks, train_fn=train_fn)
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


# --- local, N at a time ---------------------------------------------------------------

def available_cpus() -> int:
    """CPU cores this process may use (the affinity mask / cgroup cpuset, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def _worker(train_fn: Callable[..., dict], config_dict: dict[str, Any], path: str, resume: bool, conn) -> None:
    """Runs in a spawned process: train one job with stdout/stderr (fd level: C libraries too) in run.log.

    Sends exactly one message: ("done", summary) or ("failed", error line, traceback, is_artifact_error).
    SIGTERM / SIGINT raise KeyboardInterrupt once, so context managers (the grader's sandbox workers)
    unwind; the loop's checkpoints are atomic, so the run dir stays resumable either way."""
    _die_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log = open(Path(path) / LOG_FILE, "a", buffering=1)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a second signal must not abort the unwinding
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    config = TrainConfig.from_dict(config_dict)
    print(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} pid {os.getpid()}: "
          f"{config.preset}/{config.arm}/seed{config.seed} ({'resume' if resume else 'start'}) ===", flush=True)
    try:
        summary = train_fn(config, Path(path), resume=resume, progress=False)
        print("=== done ===", flush=True)
        conn.send(("done", summary))
    except KeyboardInterrupt:
        print("=== interrupted (the run dir resumes from its last checkpoint) ===", flush=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which goes on with the other jobs
        tb = traceback.format_exc()
        print(tb, flush=True)
        conn.send(("failed", f"{type(e).__name__}: {e}", tb, is_artifact_error(e)))
    finally:
        conn.close()


def _die_with_parent() -> None:
    """Linux: SIGTERM this worker if the sweep process dies (even by SIGKILL), so no trainer is orphaned."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _last_step(path: Path) -> int:
    """The step of the last complete metrics.jsonl row (0 if none): the per-job progress bar."""
    try:
        with open(path / METRICS_FILE, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line).get("step", 0))
        except (ValueError, AttributeError, TypeError):
            continue   # a torn last line (mid-write) or the cut first line
    return 0


@dataclass
class _Slot:
    job: Job
    proc: Any                  # multiprocessing Process
    conn: Any                  # parent end of the result pipe
    task: Any                  # rich progress task id
    t0: float
    msg: tuple | None = None
    stopped: bool = False      # terminated by us (fail_fast): interrupted, not failed


def run_parallel(jobs: list[Job], n_jobs: int, *, force: bool = False, progress: bool = True, console=None,
                 fail_fast: bool = False, tracebacks: bool = False, train_fn: Callable[..., dict] = execute,
                 grace_s: float = 20.0) -> list[Job]:
    """Up to `n_jobs` jobs at a time, each in its own spawned process (a fresh interpreter: no forked torch /
    tokenizer threads), its output in <run dir>/run.log; one progress line per running job here.

    Same skip / resume decisions as run_local. A failed or crashed job is recorded and the others go on
    (with fail_fast: nothing new starts and running jobs are stopped). On Ctrl-C or any error here, every
    worker is terminated (SIGTERM, then SIGKILL after `grace_s`) and the exception re-raised; its run dir
    resumes from the last checkpoint on the next sweep.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context("spawn")
    todo = deque(j for j in jobs if _prepare_skip(j))
    total = len(todo)
    running: dict[str, _Slot] = {}
    stop = False

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=console is None, refresh_per_second=2) as bar:
        overall = bar.add_task("", total=total)

        def say(text: str) -> None:
            if console is not None:
                console.print(text, markup=False, highlight=False)

        def headline() -> str:
            done = sum(j.status == "done" for j in jobs)
            failed = sum(j.status == "failed" for j in jobs)
            return f"sweep: {n_jobs} at a time, {len(running)} running, {done} done, {failed} failed"

        def start(job: Job) -> None:
            try:
                _prepare(job, force)
            except Exception as e:  # noqa: BLE001 - e.g. the dir changed since planning: this job only
                job.status, job.error = "failed", f"{type(e).__name__}: {e}"
                say(f"x {job.name} failed: {job.error}")
                bar.advance(overall)
                return
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker, name=f"sweep {job.name}",
                               args=(train_fn, job.config.to_dict(), str(job.path), job.action == "resume", send))
            task = bar.add_task(f"  {job.name} ({job.action})", total=job.config.steps, visible=progress)
            running[job.name] = _Slot(job, proc, recv, task, time.time())   # before start: Ctrl-C must find it
            proc.start()
            send.close()   # the child holds the only writer: EOF when it dies
            say(f"> {job.name} ({job.action}) started, pid {proc.pid}, log {job.path / LOG_FILE}")

        def collect(slot: _Slot) -> None:
            if slot.msg is None and slot.conn.poll():
                try:
                    slot.msg = slot.conn.recv()
                except (EOFError, OSError):
                    pass
            if slot.proc.exitcode is None:
                return
            slot.proc.join()
            slot.conn.close()
            job, msg = slot.job, slot.msg
            job.wall_s = time.time() - slot.t0
            log = job.path / LOG_FILE
            if msg is not None and msg[0] == "done":
                job.status, job.summary = "done", msg[1]
                say(f"+ {job.name} done in {job.wall_s:.0f}s")
            elif msg is not None:
                _, job.error, tb, artifact = msg
                job.status = "failed"
                if tracebacks or not artifact:
                    say(f"x {job.name} failed (full log {log}):\n{tb}")
                else:
                    say(f"x {job.name} failed: {job.error} (full log {log}; harness --debug for the traceback)")
            elif slot.stopped:
                job.status = "interrupted"
                say(f"- {job.name} stopped; it resumes on the next sweep")
            else:   # killed (OOM killer, segfault): no message
                job.status, job.error = "failed", f"worker exited with code {slot.proc.exitcode} (see {log})"
                say(f"x {job.name} failed: {job.error}")
            bar.remove_task(slot.task)
            bar.advance(overall)
            del running[job.name]

        try:
            while todo or running:
                while todo and not stop and len(running) < n_jobs:
                    start(todo.popleft())
                if stop and not running:
                    break
                bar.update(overall, description=headline())
                if running:
                    mp_wait([s.proc.sentinel for s in running.values()] + [s.conn for s in running.values()],
                            timeout=1.0)
                for slot in list(running.values()):
                    bar.update(slot.task, completed=_last_step(slot.job.path))
                    collect(slot)
                if fail_fast and not stop and any(j.status == "failed" for j in jobs):
                    stop = True
                    say("--fail-fast: a run failed; stopping the running ones (they resume on the next sweep)")
                    _terminate(running.values(), grace_s)
            bar.update(overall, description=headline())
        except BaseException:
            say(f"stopping {len(running)} running job(s); their run dirs resume on the next sweep")
            _terminate(running.values(), grace_s)
            raise
        finally:
            for slot in running.values():   # stopped, not failed: resumable
                slot.job.status, slot.job.wall_s = "interrupted", time.time() - slot.t0
    return jobs


def _terminate(slots, grace_s: float) -> None:
    """SIGTERM every worker (they unwind: sandbox workers closed), SIGKILL what is left after grace_s."""
    slots = list(slots)
    for s in slots:
        s.stopped = True
        if s.proc.pid is not None and s.proc.exitcode is None:
            s.proc.terminate()
    deadline = time.time() + grace_s
    for s in slots:
        if s.proc.pid is None:      # interrupted before it started
            continue
        s.proc.join(max(0.0, deadline - time.time()))
        if s.proc.exitcode is None:
            s.proc.kill()
            s.proc.join()


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
