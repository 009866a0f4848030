"""Executor backends: run untrusted programs and return what they did, never a verdict.

Every backend drives the same fork server (`sandbox/worker.py`) over its JSON-lines protocol:
  - `process`: the worker on the host, inside bubblewrap (no network, read-only system dirs,
    private /tmp, own pid namespace). Without a working bwrap it REFUSES to grade (UnsandboxedError)
    unless the user opted in to plain rlimits (--allow-unsandboxed or RH_ALLOW_UNSANDBOXED=1).
  - `docker`: the worker inside the pinned, locked-down container (`sandbox.docker_executor`).
  - `subprocess`: the naive baseline the original benchmark uses — a fresh interpreter per program,
    same limits, no fork server. Only `make bench-grader` uses it.
The worker enforces per-program limits; this side adds crash recovery: if a program kills the
worker (or a sibling), the affected jobs are re-run one at a time, so verdicts stay deterministic.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import selectors
import shutil
import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

log = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).resolve().with_name("worker.py")
EXECUTOR_KINDS = ("auto", "process", "docker", "subprocess")
# The opt-in to grading model-written programs with plain rlimits only (the CLI's --allow-unsandboxed sets it,
# so spawned sweep workers inherit it).
ALLOW_UNSANDBOXED_ENV = "RH_ALLOW_UNSANDBOXED"


def unsandboxed_allowed() -> bool:
    return os.environ.get(ALLOW_UNSANDBOXED_ENV, "").strip().lower() in ("1", "true", "yes")


def refusal(missing: str) -> str:
    """The one-line refusal: what is missing and both ways forward."""
    return (f"refusing to grade without isolation: {missing}; install bubblewrap (apt-get install bubblewrap) "
            f"or use Docker (make image; --sandbox docker), or accept plain rlimits with no network/filesystem "
            f"isolation via --allow-unsandboxed or {ALLOW_UNSANDBOXED_ENV}=1")


@dataclass(frozen=True)
class Limits:
    """Per-program limits; the ONE place their defaults live."""
    # CPU time is the real limit (load-independent: the slowest canonical solution needs ~3 CPU-s for all
    # its tests); the wall clock only stops sleepers, and is generous because a busy machine stretches
    # wall time (x5 seen on 2 shared cores) and a wall-time kill of an honest program would be load noise.
    timeout_s: float = 60.0        # wall clock
    cpu_s: int = 10                # RLIMIT_CPU
    memory_mb: int = 1024          # RLIMIT_AS
    max_output: int = 65536        # stdout/stderr bytes kept (16x this => killed)
    max_result: int = 32 << 20     # private result-channel bytes kept
    max_file: int = 1 << 20        # RLIMIT_FSIZE and read-back cap


@dataclass
class Job:
    id: str
    code: str                      # trusted program (the grading harness)
    args: Any = None               # JSON handed to the program as __args__
    setup: str = ""                # trusted setup code, exec'd once per worker
    read_files: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)

    def request(self) -> dict:
        return {"id": self.id, "code": self.code, "setup": self.setup, "args": self.args,
                "read_files": list(self.read_files), **asdict(self.limits)}


@dataclass
class ExecResult:
    id: str
    status: str                    # ok | error | timeout | memory | output_limit | killed | worker_killed | internal
    exit_code: int | None = None
    signal: int | None = None
    stdout: str = ""
    stderr: str = ""
    result: bytes = b""            # the private channel (fd 3)
    files: dict[str, bytes | None] = field(default_factory=dict)
    wall_s: float = 0.0
    truncated: bool = False
    cpu_time_s: float = 0.0        # the program's own user + system CPU (its rusage at reaping)

    @classmethod
    def from_response(cls, d: dict) -> "ExecResult":
        return cls(id=d["id"], status=d["status"], exit_code=d.get("exit_code"), signal=d.get("signal"),
                   stdout=d.get("stdout", ""), stderr=d.get("stderr", ""),
                   result=base64.b64decode(d.get("result", "")),
                   files={k: (None if v is None else base64.b64decode(v)) for k, v in (d.get("files") or {}).items()},
                   wall_s=float(d.get("wall_s", 0.0)), truncated=bool(d.get("truncated", False)),
                   cpu_time_s=float(d.get("cpu_time_s", 0.0)))


class ExecutorError(RuntimeError):
    pass


class UnsandboxedError(ExecutorError):
    """No isolation is available and the user did not opt in to grading without it."""


class Executor(ABC):
    kind: str = "abstract"
    description: str = ""
    isolated_by: str = "none"      # what isolates graded programs: docker | bubblewrap | none

    def start(self) -> dict[str, str]:
        """Start now rather than at the first job, and say what isolates graded programs (config.json records it)."""
        return {"backend": self.kind, "isolated_by": self.isolated_by, "detail": self.description}

    @abstractmethod
    def run_many(self, jobs: list[Job]) -> list[ExecResult]:
        """Results in the order of `jobs`."""

    def run(self, job: Job) -> ExecResult:
        return self.run_many([job])[0]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _WorkerDied(Exception):
    def __init__(self, done: dict[str, ExecResult], why: str):
        self.done, self.why = done, why


class WorkerExecutor(Executor):
    """Client for one long-lived `worker.py` process. Subclasses say how to start it (`_spawn`)."""

    hello_timeout_s = 30.0
    retry_statuses = ("killed", "internal")  # a sibling's doing, or a failed fork: re-run alone once

    def __init__(self, workers: int = 2):
        self.workers = max(1, int(workers))
        self._proc: subprocess.Popen | None = None
        self._reader: _LineReader | None = None
        self.hello: dict | None = None
        self._lock = threading.Lock()

    @abstractmethod
    def _spawn(self) -> subprocess.Popen:
        """Start the worker with binary stdin/stdout pipes (stderr may go anywhere)."""

    # -- process management
    def _ensure(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        try:
            self._proc = self._spawn()
        except ExecutorError:
            raise
        except Exception as e:  # e.g. the docker daemon refusing: infrastructure, never a verdict
            raise ExecutorError(f"{self.kind}: cannot start the worker: {e}") from e
        self._reader = _LineReader(self._proc.stdout)
        line = self._reader.readline(self.hello_timeout_s)
        if not line:
            err = _drain_stderr(self._proc)
            self._kill()
            raise ExecutorError(f"{self.kind}: worker did not start: {err.strip()[-2000:] or 'no output'}")
        try:
            self.hello = json.loads(line)
        except ValueError:
            err = _drain_stderr(self._proc)
            self._kill()
            raise ExecutorError(f"{self.kind}: worker said {line[:300]!r} instead of hello; "
                                f"{err.strip()[-1000:]}") from None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self._kill()

    def start(self) -> dict[str, str]:
        with self._lock:
            self._ensure()
        return super().start()

    # -- running
    def run_many(self, jobs: list[Job]) -> list[ExecResult]:
        if not jobs:
            return []
        ids = [j.id for j in jobs]
        if len(set(ids)) != len(ids):
            raise ValueError("job ids must be unique within a batch")
        with self._lock:
            done: dict[str, ExecResult] = {}
            todo = list(jobs)
            for attempt in range(2):  # a second batch for the innocent bystanders of a worker death
                try:
                    done.update(self._batch(todo))
                    break
                except _WorkerDied as e:
                    done.update(e.done)
                    todo = [j for j in todo if j.id not in done]
                    log.warning("%s: worker died mid-batch (%s); %d unfinished job(s) %s", self.kind, e.why,
                                len(todo), "re-run as a batch" if attempt == 0 else "re-run one at a time")
                    self._kill()
            for job in jobs:
                r = done.get(job.id)
                if r is None or r.status in self.retry_statuses:
                    done[job.id] = self._solo(job)
        return [done[i] for i in ids]

    def _solo(self, job: Job) -> ExecResult:
        """Alone on a fresh worker. If the worker dies again the program did it: `worker_killed`.
        If no worker can be started at all, ExecutorError propagates: an infrastructure failure must
        never turn into 'not correct' verdicts."""
        try:
            return self._batch([job])[job.id]
        except _WorkerDied as e:
            self._kill()
            return ExecResult(id=job.id, status="worker_killed", stderr=e.why)

    def _batch(self, jobs: list[Job]) -> dict[str, ExecResult]:
        self._ensure()
        proc = self._proc
        assert proc is not None
        payload = b"".join(json.dumps(j.request(), separators=(",", ":")).encode() + b"\n" for j in jobs)

        def write():
            try:
                proc.stdin.write(payload)
                proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                pass  # the reader notices the dead worker

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        want = {j.id for j in jobs}
        # the worker enforces limits itself; this only guards against a hung worker
        patience = max(j.limits.timeout_s for j in jobs) + 60.0
        done: dict[str, ExecResult] = {}
        while want - done.keys():
            line = self._reader.readline(patience)
            if line is None:
                raise _WorkerDied(done, "no response within %.0fs" % patience)
            if not line:
                raise _WorkerDied(done, f"exit code {proc.poll()}")
            try:
                resp = json.loads(line)
            except ValueError:
                raise _WorkerDied(done, f"garbage from worker: {line[:300]!r}") from None
            if resp.get("id") in want:
                done[resp["id"]] = ExecResult.from_response(resp)
            elif resp.get("status") == "internal":
                raise ExecutorError(f"{self.kind}: worker rejected a request: {resp.get('stderr')}")
        writer.join(timeout=5)
        return done


class _LineReader:
    """Lines from a pipe with a timeout (the worker may hang; we must not)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buf = bytearray()

    def readline(self, timeout: float) -> bytes | None:
        """One line, b'' at EOF, None on timeout."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.fd, selectors.EVENT_READ)
            while True:
                nl = self.buf.find(b"\n")
                if nl >= 0:
                    line = bytes(self.buf[:nl + 1])
                    del self.buf[:nl + 1]
                    return line
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if not sel.select(left):
                    continue
                chunk = os.read(self.fd, 1 << 20)
                if not chunk:
                    return b""
                self.buf += chunk


def _drain_stderr(proc: subprocess.Popen) -> str:
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
    if proc.stderr is None:
        return ""
    try:
        return proc.stderr.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def _python() -> str:
    return os.path.realpath(sys.executable)


def _worker_env() -> dict[str, str]:
    return {"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


# ---------------------------------------------------------------------------------------- process
def bwrap_command(workers: int) -> list[str] | None:
    """The bubblewrap command that runs the worker with no network and a minimal read-only view."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return None
    import sysconfig

    py = _python()
    prefix = os.path.realpath(sys.base_prefix)
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-net", "--unshare-pid", "--unshare-ipc",
           "--unshare-uts", "--unshare-cgroup-try", "--clearenv"]
    for k, v in _worker_env().items():
        cmd += ["--setenv", k, v]
    cmd += ["--setenv", "HOME", "/tmp", "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    for f in ("/etc/ld.so.cache", "/etc/localtime"):
        cmd += ["--ro-bind-try", f, f]
    if not prefix.startswith("/usr/"):
        # ancestors like /root are 0700 on the host; children (uid nobody) must be able to traverse them
        parts = prefix.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            cmd += ["--perms", "0755", "--dir", "/" + "/".join(parts[:i])]
        cmd += ["--ro-bind", prefix, prefix]
    if not py.startswith(prefix + "/") and not py.startswith("/usr/"):
        cmd += ["--ro-bind", os.path.dirname(py), os.path.dirname(py)]
    # hide third-party packages: children see the stdlib only, as in the container
    for sp in sorted({os.path.realpath(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}):
        if os.path.isdir(sp) and sp.startswith(prefix):
            cmd += ["--tmpfs", sp]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--perms", "0755", "--size", str(512 << 20), "--tmpfs", "/tmp",
            "--ro-bind", str(WORKER_PATH), "/opt/rh/worker.py", "--chdir", "/tmp"]
    if os.geteuid() == 0:  # root in the sandbox keeps only what the fork server needs
        cmd += ["--cap-drop", "ALL"]
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER", "CAP_KILL",
                    "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"):
            cmd += ["--cap-add", cap]
    cmd += [py, "-S", "/opt/rh/worker.py", "--jobs", str(workers), "--base-dir", "/tmp"]
    return cmd


class ProcessExecutor(WorkerExecutor):
    """The worker on the host, inside bubblewrap; without it, plain rlimits only if the user opted in.

    allow_unsandboxed: None = read RH_ALLOW_UNSANDBOXED when the worker starts (the CLI flag sets it).
    isolation="none" skips bubblewrap on purpose, and still needs the opt-in."""

    kind = "process"

    def __init__(self, workers: int = 2, isolation: str = "auto", allow_unsandboxed: bool | None = None):
        super().__init__(workers)
        if isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be auto|bwrap|none, got {isolation!r}")
        self.isolation = isolation
        self.allow_unsandboxed = allow_unsandboxed
        self.isolated: bool | None = None  # known after the first start
        self.fallback_reason = ""

    def _allowed(self) -> bool:
        return unsandboxed_allowed() if self.allow_unsandboxed is None else bool(self.allow_unsandboxed)

    def _spawn(self) -> subprocess.Popen:
        if self.isolation != "none" and self.isolated is not False:
            cmd = bwrap_command(self.workers)
            if cmd is not None:
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True)
                return proc
            self.fallback_reason = "bubblewrap (bwrap) not found on PATH"
            if self.isolation == "bwrap":
                raise ExecutorError(f"process backend: isolation='bwrap' requested but {self.fallback_reason}")
            if not self._allowed():
                raise UnsandboxedError(refusal(self.fallback_reason))
        return self._plain()

    def _plain(self) -> subprocess.Popen:
        return subprocess.Popen([_python(), "-S", str(WORKER_PATH), "--jobs", str(self.workers)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_worker_env(), start_new_session=True)

    def _ensure(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self.isolated is None and self.isolation != "none":
            try:
                super()._ensure()
                self.isolated = self.fallback_reason == ""
            except UnsandboxedError:
                raise
            except ExecutorError as e:
                if self.isolation == "bwrap":
                    raise
                self.fallback_reason = f"bubblewrap did not start: {' '.join(str(e).split())[:300]}"
                if not self._allowed():
                    raise UnsandboxedError(refusal(self.fallback_reason)) from None
                self.isolated = False
            if self.isolated:
                self.isolated_by = "bubblewrap"
                self.description = ("process backend: fork server inside bubblewrap (no network, read-only system, "
                                    "private /tmp)")
                log.info(self.description)
                return
            log.warning("process backend: %s; graded programs run with plain rlimits and NO network or filesystem "
                        "isolation (allowed by --allow-unsandboxed / %s)", self.fallback_reason, ALLOW_UNSANDBOXED_ENV)
            self.description = f"process backend: plain rlimits, NOT isolated ({self.fallback_reason}; opted in)"
        elif self.isolation == "none":
            if not self._allowed():
                raise UnsandboxedError(refusal("isolation='none' was requested"))
            self.isolated = False
            self.description = "process backend: plain rlimits (isolation='none', opted in)"
        super()._ensure()


class SubprocessExecutor(Executor):
    """Naive baseline: a fresh interpreter per program (what the original benchmark does), same limits.

    Not isolated, by definition of the baseline; only `make bench-grader` uses it, on its own workloads.
    Each program pays interpreter start-up, imports and setup; children keep the parent's uid as a
    plain subprocess would. Used by the benchmark to check verdicts and measure the speed-up.
    """

    kind = "subprocess"
    description = "naive: one fresh python subprocess per program"

    def __init__(self, workers: int = 2, allow_unsandboxed: bool | None = None, **_):
        self.workers = max(1, int(workers))
        self.allow_unsandboxed = allow_unsandboxed

    def _one(self, job: Job) -> ExecResult:
        cmd = [_python(), "-S", str(WORKER_PATH), "--jobs", "1", "--no-preload", "--child-uid", str(os.geteuid())]
        proc = subprocess.run(cmd, input=json.dumps(job.request()).encode() + b"\n", capture_output=True,
                              env=_worker_env(), timeout=job.limits.timeout_s + 60)
        lines = proc.stdout.splitlines()
        if len(lines) < 2:
            return ExecResult(id=job.id, status="worker_killed", stderr=proc.stderr.decode("utf-8", "replace"))
        return ExecResult.from_response(json.loads(lines[1]))

    def run_many(self, jobs: list[Job]) -> list[ExecResult]:
        allowed = unsandboxed_allowed() if self.allow_unsandboxed is None else self.allow_unsandboxed
        if not allowed:   # `--sandbox subprocess` must not be a way around the refusal
            raise UnsandboxedError(refusal("the subprocess backend never isolates"))
        with ThreadPoolExecutor(self.workers) as pool:
            return list(pool.map(self._one, jobs))


__all__ = ["Limits", "Job", "ExecResult", "Executor", "WorkerExecutor", "ProcessExecutor", "SubprocessExecutor",
           "ExecutorError", "UnsandboxedError", "bwrap_command", "WORKER_PATH",
           "EXECUTOR_KINDS", "ALLOW_UNSANDBOXED_ENV", "unsandboxed_allowed", "refusal"]
