#!/usr/bin/env python3
"""The grading fork server: one long-lived process that forks a child per program.

Stdlib only and self-contained, so it runs the same way on the host (inside bubblewrap)
and inside the pinned container. Start it as a plain script:

    python3 -S sandbox/worker.py --jobs 2        # (re-execs itself with PYTHONHASHSEED=0)

Protocol (one JSON object per line, UTF-8):
  -> stdout, first line:  {"hello": "rh-worker", "protocol": 1, "python": "3.11.7", "uid": ..., "child_uid": ...}
  <- stdin, one request per line:
     {"id": str,                      # echoed back
      "code": str,                    # trusted program source (compiled once in the server, cached by hash)
      "setup": str,                   # trusted setup source (exec'd once in the server, cached by hash)
      "args": any JSON,               # handed to the program as the global __args__
      "timeout_s": float,             # wall clock, then SIGKILL to the child's process group
      "cpu_s": int,                   # RLIMIT_CPU
      "memory_mb": int,               # RLIMIT_AS
      "max_output": int,              # stdout/stderr bytes kept (more is drained and dropped; 16x => killed)
      "max_result": int,              # bytes kept from the private result channel (fd 3)
      "read_files": [str],            # names in the work dir read back after the child exits
      "max_file": int}                # RLIMIT_FSIZE and per-file read-back cap
  -> stdout, one response per request, in completion order:
     {"id", "status", "exit_code", "signal", "stdout", "stderr", "result" (base64), "files" {name: base64|null},
      "wall_s", "cpu_time_s" (the child's user + system CPU), "truncated"}
     status: ok | error | timeout | memory | output_limit | killed | internal

Each child: setsid (own process group), fresh private temp work dir as cwd, scrubbed environment,
stdin=/dev/null, every other fd closed, rlimits (CPU, AS, FSIZE, NOFILE, NPROC=0 => no fork/threads,
no core), privileges dropped to an unprivileged uid when the server runs as root. Network isolation
comes from the outside (bubblewrap --unshare-net, or the container's network=none).
"""
from __future__ import annotations

import base64
import builtins
import errno
import gc
import hashlib
import io
import json
import os
import resource
import selectors
import shutil
import signal
import stat
import sys
import tempfile
import time
import traceback

PROTOCOL = 1
EXIT_MEMORY = 86          # child exit code for an uncaught MemoryError
EXIT_INTERNAL = 87        # child exit code when the harness itself could not start
NOBODY = 65534
RESULT_FD = 3

DEFAULTS = dict(timeout_s=10.0, cpu_s=8, memory_mb=1024, max_output=65536, max_result=32 << 20,
                read_files=(), max_file=1 << 20)

# Stdlib modules imported once in the server so that children never touch the filesystem to import
# them (faster, and identical across backends: children may run as a uid that cannot read the
# interpreter's directory). Model code importing anything else gets a plain ImportError or a slow import.
PRELOAD = (
    "abc", "array", "bisect", "cmath", "collections", "collections.abc", "copy", "dataclasses",
    "datetime", "decimal", "enum", "fractions", "functools", "graphlib", "heapq", "itertools", "json",
    "math", "numbers", "operator", "queue", "random", "re", "statistics", "string", "struct",
    "sys", "textwrap", "time", "types", "typing", "unicodedata", "contextlib", "weakref", "traceback",
)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


# --------------------------------------------------------------------------- caches (server side)
_CODE_CACHE: dict[str, object] = {}
_SETUP_CACHE: dict[str, dict] = {}


def _cached_code(src: str):
    key = hashlib.sha256(src.encode()).hexdigest()
    if key not in _CODE_CACHE:
        if len(_CODE_CACHE) > 16:
            _CODE_CACHE.clear()
        _CODE_CACHE[key] = compile(src, "<rh-program>", "exec")
    return _CODE_CACHE[key]


def _cached_setup(src: str) -> dict:
    """The setup code runs once per distinct source; children get a shallow copy of its globals."""
    key = hashlib.sha256(src.encode()).hexdigest()
    if key not in _SETUP_CACHE:
        if len(_SETUP_CACHE) > 16:
            _SETUP_CACHE.clear()
        ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        exec(compile(src, "<setup>", "exec"), ns)
        _SETUP_CACHE[key] = ns
        gc.freeze()  # children never collect (or copy-on-write-touch) the server's objects
    return _SETUP_CACHE[key]


# --------------------------------------------------------------------------- child side
def _child(req: dict, workdir: str, fds: tuple[int, int, int, int], child_uid: int | None, ns: dict, code) -> None:
    """Runs in the forked child; never returns."""
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL if sig != signal.SIGPIPE else signal.SIG_IGN)
        import fcntl

        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in fds]
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        os.closerange(RESULT_FD + 1, _max_fd())
        os.chdir(workdir)
        limit_file = int(req["max_file"])
        mem = int(req["memory_mb"]) << 20
        cpu = max(1, int(req["cpu_s"]))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file, limit_file))
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
        if child_uid is not None:
            os.setgroups([])
            os.setgid(child_uid)
            os.setuid(child_uid)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # after setuid: no fork, no threads, no exec
        os.environ.clear()
        os.environ.update(PATH="/usr/bin:/bin", HOME=workdir, TMPDIR=workdir, LANG="C.UTF-8")
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        g = dict(ns)
        g.update(__name__="__main__", __args__=req.get("args"), __result_fd__=RESULT_FD, __builtins__=builtins)
    except BaseException:
        try:
            os.write(2, traceback.format_exc().encode()[-4000:])
        finally:
            os._exit(EXIT_INTERNAL)
    code_exit = 0
    try:
        exec(code, g)
    except SystemExit as e:
        code_exit = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except MemoryError:
        code_exit = EXIT_MEMORY
    except BaseException:
        try:
            traceback.print_exc()
        except BaseException:
            pass
        code_exit = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    os._exit(code_exit & 0xFF)


def _max_fd() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return min(soft, 1 << 16) if soft != resource.RLIM_INFINITY else 1 << 16


# --------------------------------------------------------------------------- server side
class _Running:
    __slots__ = ("req", "pid", "workdir", "bufs", "sizes", "open_fds", "started", "deadline",
                 "kill_reason", "exit_status", "reaped_at", "cpu_time_s")

    def __init__(self, req, pid, workdir, fd_map, started):
        self.req = req
        self.pid = pid
        self.workdir = workdir
        self.bufs = {name: bytearray() for name in fd_map.values()}
        self.sizes = {name: 0 for name in fd_map.values()}
        self.open_fds = dict(fd_map)  # fd -> "stdout" | "stderr" | "result"
        self.started = started
        self.deadline = started + float(req["timeout_s"])
        self.kill_reason = None
        self.exit_status = None
        self.reaped_at = None
        self.cpu_time_s = 0.0


class Server:
    def __init__(self, jobs: int, child_uid: int | None, base_dir: str | None):
        self.jobs = max(1, jobs)
        self.child_uid = child_uid
        self.base = tempfile.mkdtemp(prefix="rh-work-", dir=base_dir)
        os.chmod(self.base, 0o711)  # children can reach their own dir but cannot list siblings'
        self.sel = selectors.PollSelector()  # poll, not epoll: stdin may be a regular file
        self.queue: list[dict] = []
        self.running: dict[int, _Running] = {}
        self.by_fd: dict[int, _Running] = {}
        self.inbuf = bytearray()
        self.stdin_open = True
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, "stdin")
        self.sel.register(self.wake_r, selectors.EVENT_READ, "wake")
        self.out = sys.stdout.buffer

    # -- I/O with the client
    def send(self, obj: dict) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        self.out.flush()

    def _read_stdin(self) -> None:
        while True:
            try:
                chunk = os.read(0, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                self.stdin_open = False
                self.sel.unregister(0)
                break
            self.inbuf += chunk
        self._parse_lines(final=True)

    def _parse_lines(self, final: bool = False) -> None:
        while True:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                if final and not self.stdin_open and self.inbuf.strip():
                    line, self.inbuf = bytes(self.inbuf), bytearray()
                    self._accept(line)
                return
            line, self.inbuf = bytes(self.inbuf[:nl]), self.inbuf[nl + 1:]
            if line.strip():
                self._accept(line)

    def _accept(self, line: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or "id" not in req or "code" not in req:
                raise ValueError("request needs 'id' and 'code'")
        except ValueError as e:
            self.send(_response({"id": None}, "internal", stderr=f"bad request: {e}"))
            return
        for k, v in DEFAULTS.items():
            req.setdefault(k, v)
        req.setdefault("setup", "")
        self.queue.append(req)

    # -- children
    def _start(self, req: dict) -> None:
        try:
            ns = _cached_setup(req["setup"])
            code = _cached_code(req["code"])
        except BaseException:
            self.send(_response(req, "internal", stderr="setup/code failed in server:\n" + traceback.format_exc()[-3000:]))
            return
        workdir = tempfile.mkdtemp(dir=self.base)
        if self.child_uid is not None:
            os.chown(workdir, self.child_uid, self.child_uid)
        os.chmod(workdir, 0o700)
        pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, result
        devnull = os.open(os.devnull, os.O_RDONLY)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:  # out of processes/memory: report, keep serving
            for fd in [devnull] + [fd for pair in pipes for fd in pair]:
                os.close(fd)
            _rmtree(workdir)
            self.send(_response(req, "internal", stderr=f"fork failed: {e}"))
            return
        if pid == 0:  # child
            _child(req, workdir, (devnull, pipes[0][1], pipes[1][1], pipes[2][1]), self.child_uid, ns, code)
        os.close(devnull)
        fd_map = {}
        for (r, w), name in zip(pipes, ("stdout", "stderr", "result")):
            os.close(w)
            os.set_blocking(r, False)
            fd_map[r] = name
        job = _Running(req, pid, workdir, fd_map, time.monotonic())
        self.running[pid] = job
        for fd in fd_map:
            self.by_fd[fd] = job
            self.sel.register(fd, selectors.EVENT_READ, "child")

    def _drain(self, fd: int, job: _Running) -> None:
        name = job.open_fds[fd]
        cap = int(job.req["max_result"] if name == "result" else job.req["max_output"])
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._close_fd(fd, job)
                return
            job.sizes[name] += len(chunk)
            room = cap - len(job.bufs[name])
            if room > 0:
                job.bufs[name] += chunk[:room]
            if name != "result" and job.sizes[name] > 16 * cap and job.kill_reason is None:
                self._kill(job, "output_limit")

    def _close_fd(self, fd: int, job: _Running) -> None:
        self.sel.unregister(fd)
        os.close(fd)
        del job.open_fds[fd]
        del self.by_fd[fd]

    def _kill(self, job: _Running, reason: str) -> None:
        if job.kill_reason is None:
            job.kill_reason = reason
        for target in (lambda: os.killpg(job.pid, signal.SIGKILL), lambda: os.kill(job.pid, signal.SIGKILL)):
            try:
                target()
            except OSError:
                pass

    def _reap(self) -> None:
        while self.running:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.running.get(pid)
            if job is None:
                continue
            job.exit_status = status
            job.reaped_at = time.monotonic()
            job.cpu_time_s = usage.ru_utime + usage.ru_stime   # the program's own CPU (children it waited for too)
            try:  # anything left in the child's process group goes too
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass

    def _finish_ready(self) -> None:
        now = time.monotonic()
        for pid, job in list(self.running.items()):
            if job.exit_status is None:
                if now > job.deadline:
                    self._kill(job, "timeout")
                continue
            for fd in list(job.open_fds):
                self._drain(fd, job)
            if job.open_fds and now - job.reaped_at < 0.5:
                continue  # a pipe still open after exit: give the drain a moment
            for fd in list(job.open_fds):
                self._close_fd(fd, job)
            del self.running[pid]
            self.send(self._result(job))

    def _result(self, job: _Running) -> dict:
        st = job.exit_status
        exit_code = os.WEXITSTATUS(st) if os.WIFEXITED(st) else None
        sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
        if job.kill_reason is not None:
            status = job.kill_reason
        elif sig is not None:
            status = "timeout" if sig in (signal.SIGXCPU, signal.SIGKILL) and _cpu_exhausted(job) else "killed"
        elif exit_code == 0:
            status = "ok"
        elif exit_code == EXIT_MEMORY:
            status = "memory"
        elif exit_code == EXIT_INTERNAL:
            status = "internal"
        else:
            status = "error"
        files = {name: _read_back(job.workdir, name, int(job.req["max_file"])) for name in job.req["read_files"]}
        _rmtree(job.workdir)
        trunc = any(job.sizes[n] > len(job.bufs[n]) for n in job.bufs)
        return _response(job.req, status, exit_code=exit_code, signal=sig,
                         stdout=job.bufs["stdout"].decode("utf-8", "replace"),
                         stderr=job.bufs["stderr"].decode("utf-8", "replace")[-4000:],
                         result=bytes(job.bufs["result"]), files=files,
                         wall_s=round(time.monotonic() - job.started, 4), truncated=trunc,
                         cpu_time_s=round(job.cpu_time_s, 4))

    def serve(self) -> None:
        self.send({"hello": "rh-worker", "protocol": PROTOCOL, "python": sys.version.split()[0],
                   "uid": os.getuid(), "child_uid": self.child_uid, "jobs": self.jobs})
        try:
            while self.stdin_open or self.queue or self.running:
                while self.queue and len(self.running) < self.jobs:
                    self._start(self.queue.pop(0))
                timeout = 0.25
                if self.running:
                    timeout = max(0.0, min(0.25, min(j.deadline for j in self.running.values()) - time.monotonic() + 0.001))
                for key, _ in self.sel.select(timeout):
                    if key.data == "stdin":
                        self._read_stdin()
                    elif key.data == "wake":
                        try:
                            while os.read(self.wake_r, 4096):
                                pass
                        except BlockingIOError:
                            pass
                    elif key.fd in self.by_fd:
                        self._drain(key.fd, self.by_fd[key.fd])
                self._reap()
                self._finish_ready()
        finally:
            for job in self.running.values():
                self._kill(job, "internal")
            _rmtree(self.base)


def _cpu_exhausted(job: _Running) -> bool:
    # SIGXCPU is only ever sent by RLIMIT_CPU; a bare SIGKILL we did not send is the hard CPU limit
    # when the job ran at least its CPU allowance of wall time.
    return time.monotonic() - job.started >= float(job.req["cpu_s"]) * 0.9


def _read_back(workdir: str, name: str, cap: int):
    if os.path.isabs(name) or ".." in name.split("/"):
        return None
    try:
        fd = os.open(os.path.join(workdir, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return base64.b64encode(os.read(fd, cap)).decode()
    except OSError:
        return None
    finally:
        os.close(fd)


def _rmtree(path: str) -> None:
    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


def _response(req: dict, status: str, exit_code=None, signal=None, stdout="", stderr="", result=b"",
              files=None, wall_s=0.0, truncated=False, cpu_time_s=0.0) -> dict:
    return {"id": req.get("id"), "status": status, "exit_code": exit_code, "signal": signal,
            "stdout": stdout, "stderr": stderr, "result": base64.b64encode(result).decode(),
            "files": files or {}, "wall_s": wall_s, "truncated": truncated, "cpu_time_s": cpu_time_s}


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=2, help="children running at once")
    p.add_argument("--child-uid", type=int, default=None,
                   help=f"uid for children (default: {NOBODY} when started as root, else unchanged)")
    p.add_argument("--base-dir", default=None, help="where per-job work dirs are created (default: $TMPDIR)")
    p.add_argument("--no-preload", action="store_true", help="import only what each setup needs")
    a = p.parse_args(argv)
    if os.environ.get("PYTHONHASHSEED") != "0":
        # set/dict-of-str iteration order must not vary between runs or backends
        env = dict(os.environ, PYTHONHASHSEED="0")
        os.execve(sys.executable, [sys.executable, "-S", os.path.abspath(__file__)] + (argv if argv is not None else sys.argv[1:]), env)
    child_uid = a.child_uid
    if child_uid is None and os.geteuid() == 0:
        child_uid = NOBODY
    if child_uid is not None and child_uid == os.geteuid():
        child_uid = None
    if not a.no_preload:
        _preload()
    gc.freeze()
    Server(a.jobs, child_uid, a.base_dir).serve()


if __name__ == "__main__":
    main()
