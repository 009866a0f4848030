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

from harness.orchestrate.runs import execute, is_artifact_error, plan_action, preflight, prepare_run_dir
from harness.presets import resolve_config
from harness.rundir import METRICS_FILE, read_summary, run_dir
from policy.config import TrainConfig
from sandbox.paths import ARTIFACTS_DIR, DATA_DIR, SHARED_DATA_DIR

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
    fold: str = ""                    # a design's fold label (lomo: the held mode); "" for main / ablations

    @property
    def name(self) -> str:
        return f"{self.fold + ':' if self.fold else ''}{self.config.preset}/{self.arm}/seed{self.seed}"


def plan_design(design: str, preset: str, seeds: list[int], out: str | Path,
                overrides: dict[str, Any] | None = None, arms: list[str] | None = None, *, resume: bool = True,
                force: bool = False) -> list[Job]:
    """plan() for every fold of a design (harness.orchestrate.designs): `arms` narrows each fold's arms (an arm no fold
    has is an error); a fold's overrides are what defines it, so a --set that contradicts one is an error."""
    from harness.orchestrate.designs import get_design
    from policy.config import ConfigError

    folds = get_design(design).folds()
    if arms:
        unknown = sorted(set(arms) - {a for f in folds for a in f.arms})
        if unknown:
            raise ConfigError(f"design {design} has no arm(s) {', '.join(unknown)}; "
                              f"its arms: {', '.join(dict.fromkeys(a for f in folds for a in f.arms))}")
    jobs: list[Job] = []
    for fold in folds:
        merged = dict(overrides or {})
        for k, v in fold.overrides.items():
            if k in merged and merged[k] != v:
                raise ConfigError(f"design {design} sets {k}={v!r} in fold {fold.label or fold.subroot}; "
                                  f"--set {k}={merged[k]!r} contradicts it")
            merged[k] = v
        fold_arms = [a for a in fold.arms if not arms or a in arms]
        for job in plan(preset, fold_arms, seeds, fold.root(out), merged, resume=resume, force=force):
            job.fold = fold.label
            jobs.append(job)
    return jobs


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


def _worker(train_fn: Callable[..., dict], conn) -> None:
    """A spawned worker: runs the jobs the sweep sends, one after another, as the sequential path does in
    its one process (so imports and in-process caches are paid once per worker, not once per run).

    Per job: stdout / stderr, at the fd level (C libraries too), go to <run dir>/run.log, and exactly one
    message comes back: ("done", summary) or ("failed", error line, traceback, is_artifact_error).
    None ends the worker. SIGTERM / SIGINT raise KeyboardInterrupt once, so context managers (the
    grader's sandbox workers) unwind; the loop's checkpoints are atomic, so the run dir stays resumable."""
    _die_with_parent()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)

    def interrupt(signum, frame):
        signal.signal(signal.SIGTERM, ignore)   # a second signal (Ctrl-C reaches the whole process group, then
        signal.signal(signal.SIGINT, ignore)    # the sweep's SIGTERM) must not abort the unwinding
        raise KeyboardInterrupt(f"signal {signum}")

    def ignore(signum, frame):   # not SIG_IGN: Python warns when one already pending meets SIG_IGN
        pass

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)
    try:
        while (task := conn.recv()) is not None:
            _work(train_fn, conn, *task)
    except (EOFError, KeyboardInterrupt):   # the sweep went away / stopped us between jobs
        pass


def _work(train_fn: Callable[..., dict], conn, config_dict: dict[str, Any], path: str, resume: bool) -> None:
    with open(Path(path) / LOG_FILE, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    config = TrainConfig.from_dict(config_dict)
    stamp = lambda: time.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731
    print(f"=== {stamp()} pid {os.getpid()}: {config.preset}/{config.arm}/seed{config.seed} "
          f"({'resume' if resume else 'start'}) ===")
    try:
        summary = train_fn(config, Path(path), resume=resume, progress=False)
    except KeyboardInterrupt:
        print(f"=== {stamp()} interrupted (the run dir resumes from its last checkpoint) ===")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - reported to the sweep, which goes on with the other jobs
        tb = traceback.format_exc()
        print(f"{tb}=== {stamp()} failed ===")
        conn.send(("failed", f"{type(e).__name__}: {e}", tb, is_artifact_error(e)))
        return
    print(f"=== {stamp()} done ===")
    conn.send(("done", summary))


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
class _Worker:
    proc: Any                  # multiprocessing Process running _worker
    conn: Any                  # our end of its duplex pipe
    job: Job | None = None     # the job it is running
    task: Any = None           # its rich progress task id
    t0: float = 0.0
    stopped: bool = False      # terminated by us: its job is interrupted, not failed


def run_parallel(jobs: list[Job], n_jobs: int, *, force: bool = False, progress: bool = True, console=None,
                 fail_fast: bool = False, tracebacks: bool = False, train_fn: Callable[..., dict] = execute,
                 grace_s: float = 20.0) -> list[Job]:
    """Up to `n_jobs` jobs at a time on as many spawned worker processes (fresh interpreters: no forked torch /
    tokenizer threads), each job's output in <run dir>/run.log; one progress line per running job here.

    Same skip / resume decisions as run_local. A failed job is recorded and the others go on; a worker that
    dies (segfault, OOM kill) fails its job only and is replaced. With fail_fast, nothing new starts after
    a failure and running jobs are stopped. On Ctrl-C or any error here every worker is terminated
    (SIGTERM, SIGKILL after `grace_s`) and the exception re-raised; stopped jobs resume on the next sweep.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    ctx = mp.get_context("spawn")
    todo = deque(j for j in jobs if _prepare_skip(j))
    workers: list[_Worker] = []
    stop = False

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=console is None, refresh_per_second=2) as bar:
        overall = bar.add_task("", total=len(todo))

        def say(text: str) -> None:
            if console is not None:
                console.print(text, markup=False, highlight=False)

        def headline() -> str:
            n = {s: sum(j.status == s for j in jobs) for s in ("done", "failed")}
            busy = sum(w.job is not None for w in workers)
            return f"sweep: {n_jobs} at a time, {busy} running, {n['done']} done, {n['failed']} failed"

        def spawn() -> _Worker:
            ours, theirs = ctx.Pipe()
            w = _Worker(ctx.Process(target=_worker, args=(train_fn, theirs), name="harness sweep worker"), ours)
            workers.append(w)          # before start: Ctrl-C must find it
            w.proc.start()
            theirs.close()             # the worker holds the only other end: EOF when it dies
            return w

        def assign(w: _Worker) -> None:
            while todo:
                job = todo.popleft()
                try:
                    _prepare(job, force)
                except Exception as e:  # noqa: BLE001 - e.g. the dir changed since planning: this job only
                    job.status, job.error = "failed", f"{type(e).__name__}: {e}"
                    say(f"x {job.name} failed: {job.error}")
                    bar.advance(overall)
                    continue
                try:
                    w.conn.send((job.config.to_dict(), str(job.path), job.action == "resume"))
                except OSError:              # it died while idle: the job goes back, the worker is replaced
                    todo.appendleft(job)
                    w.proc.join(grace_s)
                    workers.remove(w)
                    return
                w.job, w.t0 = job, time.time()
                w.task = bar.add_task(f"  {job.name} ({job.action})", total=job.config.steps, visible=progress)
                say(f"> {job.name} ({job.action}) on worker pid {w.proc.pid}, log {job.path / LOG_FILE}")
                return

        def finish(w: _Worker, msg: tuple | None) -> None:
            job, log = w.job, w.job.path / LOG_FILE
            job.wall_s = time.time() - w.t0
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
            elif w.stopped:
                job.status = "interrupted"
                say(f"- {job.name} stopped; it resumes on the next sweep")
            else:   # the worker died without a word (OOM killer, segfault)
                job.status, job.error = "failed", f"worker exited with code {w.proc.exitcode} (see {log})"
                say(f"x {job.name} failed: {job.error}")
            bar.remove_task(w.task)
            bar.advance(overall)
            w.job = None

        try:
            while True:
                if not stop:
                    for w in list(workers):
                        if w.job is None:
                            assign(w)
                    while todo and len(workers) < n_jobs:
                        assign(spawn())
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    break
                bar.update(overall, description=headline())
                mp_wait([w.proc.sentinel for w in busy] + [w.conn for w in busy], timeout=1.0)
                for w in busy:
                    bar.update(w.task, completed=_last_step(w.job.path))
                    if w.conn.poll():
                        try:
                            finish(w, w.conn.recv())
                            continue
                        except (EOFError, OSError):   # it died: reap it below
                            w.proc.join(grace_s)
                    if w.proc.exitcode is not None:
                        finish(w, None)
                        workers.remove(w)
                if fail_fast and not stop and any(j.status == "failed" for j in jobs):
                    stop = True
                    say("--fail-fast: a run failed; stopping the running ones (they resume on the next sweep)")
                    _terminate([w for w in workers if w.job is not None], grace_s)
            bar.update(overall, description=headline())
        except BaseException:
            say("stopping every worker; interrupted runs resume on the next sweep")
            _terminate(workers, grace_s)
            raise
        finally:
            for w in workers:
                if w.job is not None:          # stopped, not failed: resumable
                    w.job.status, w.job.wall_s = "interrupted", time.time() - w.t0
            _shutdown(workers, grace_s)
    return jobs


def _terminate(workers: list[_Worker], grace_s: float) -> None:
    """SIGTERM every worker (they unwind: sandbox workers closed), SIGKILL what is left after grace_s."""
    for w in workers:
        w.stopped = True
        if w.proc.pid is not None and w.proc.exitcode is None:
            w.proc.terminate()
    deadline = time.time() + grace_s
    for w in workers:
        if w.proc.pid is None:      # interrupted before it started
            continue
        w.proc.join(max(0.0, deadline - time.time()))
        if w.proc.exitcode is None:
            w.proc.kill()
            w.proc.join()


def _shutdown(workers: list[_Worker], grace_s: float) -> None:
    """Idle workers exit when told; any that do not are terminated."""
    for w in workers:
        if w.proc.exitcode is None and w.proc.pid is not None:
            try:
                w.conn.send(None)
            except OSError:
                pass
    deadline = time.time() + grace_s
    for w in workers:
        if w.proc.pid is not None:
            w.proc.join(max(0.0, deadline - time.time()))
    _terminate([w for w in workers if w.proc.pid is not None and w.proc.exitcode is None], grace_s)
    for w in workers:
        w.conn.close()


# --- Ray ------------------------------------------------------------------------

def _ray_job(config_dict: dict[str, Any], path: str, resume: bool) -> dict[str, Any]:
    """Runs inside a Ray worker: the same `execute` as local, no live display."""
    return execute(TrainConfig.from_dict(config_dict), Path(path), resume=resume, progress=False)


def _env_for_workers() -> dict[str, str]:
    """Workers must see the same data / artifact caches (a shared filesystem on a real cluster)."""
    env = {"RH_DATA_DIR": str(Path(DATA_DIR).resolve()), "RH_ARTIFACTS_DIR": str(Path(ARTIFACTS_DIR).resolve()),
           "RH_SHARED_DATA_DIR": str(Path(SHARED_DATA_DIR).resolve()), "TOKENIZERS_PARALLELISM": "false"}
    from sandbox.executors import ALLOW_UNSANDBOXED_ENV, unsandboxed_allowed
    if unsandboxed_allowed():   # the driver's --allow-unsandboxed holds for its tasks too
        env[ALLOW_UNSANDBOXED_ENV] = "1"
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
        from policy.config import RunError
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
        rows.append([f"{j.fold}:{j.arm}" if j.fold else j.arm, str(j.seed), j.action, j.status, hack, pss,
                     f"{j.wall_s:.0f}" if j.wall_s else "—", j.error])
    return rows


STATUS_HEADERS = ["arm", "seed", "action", "status", "hack %", "pass %", "wall s", "error"]
