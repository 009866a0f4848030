"""Docker backend: the same fork server, inside one long-lived locked-down container of the pinned image.

    with DockerExecutor(workers=2) as ex:        # starts the container (network none, read-only root, ...)
        results = ex.run_many(jobs)              # same jobs / results / verdicts as the process backend

The container's pid 1 is a tiny reaper; the fork server (`python3 -S /opt/rh/sandbox/worker.py`, baked into
the image) is started with `docker exec` through the SDK and driven over the exec's attached stdin/stdout
(JSON lines) by the same client code as the process backend (`sandbox.executors.WorkerExecutor`), so the
per-program limits (rlimits, wall time, output caps) are applied by the same code inside the container.
The container adds the outer walls: no network, read-only root, all capabilities dropped but the few the
worker needs to drop privileges (see WORKER_CAPS), no-new-privileges, the image's non-root user for
everything but the worker, programs as `nobody` with no capabilities, pid / memory / cpu limits and
a root-owned tmpfs for the work dirs. It is removed on close() and at interpreter
exit; containers leaked by a killed interpreter are removed by the next executor started on the same
host (they carry the owner's host:pid in a label).

`image_status()` answers "can the docker backend be trusted right now" (`harness doctor`): daemon up,
image present, its data labels equal to the pinned hashes, its baked-in fork server equal to this checkout's.
"""
from __future__ import annotations

import atexit
import hashlib
import os
import socket
import struct
import subprocess
import threading
import time
import weakref
from collections import deque
from pathlib import Path
from typing import Any

from sandbox.executors import Limits, WorkerExecutor, log

# The image `make image` tags; the executor's default. Override: RH_GRADER_IMAGE.
IMAGE = os.environ.get("RH_GRADER_IMAGE", "rh-grader:latest")
IMAGE_ROOT = "/opt/rh"                       # where the Dockerfile puts sandbox/, data/, pool/
# The fork server runs as root holding only these capabilities (the set the process backend keeps inside
# bubblewrap), so that it can drop each program to `nobody` exactly as on a root host: programs then
# cannot signal the worker, cannot write outside their job dir, and cannot reach a sibling's files or
# /proc entries (a uid change makes them non-dumpable). Programs keep no capability at all.
WORKER_USER = "0"
WORKER_CAPS = ("SETUID", "SETGID", "CHOWN", "FOWNER", "KILL", "DAC_OVERRIDE", "DAC_READ_SEARCH")
CONTAINER_LABEL = "rh.grader.owner"          # value: "<hostname>:<pid>" of the interpreter that started it
SANDBOX_DIR = Path(__file__).resolve().parent


# --------------------------------------------------------------------------------------------------
# identity of what is baked into the image
# --------------------------------------------------------------------------------------------------
def code_hash(root: str | Path = SANDBOX_DIR) -> str:
    """sha256 over a package tree's .py files (relative path + bytes): the rh.sandbox.sha256 label.

    Informational: of the baked-in package only worker.py runs in the container (the grader sends the
    program and setup code with every job), so freshness is judged by `worker_hash`.
    """
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        if "__pycache__" in p.parts:
            continue
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()


def worker_hash(path: str | Path = SANDBOX_DIR / "worker.py") -> str:
    """sha256 of the fork server's source: the code that runs in the container (label rh.worker.sha256)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parse_hash_list(label: str | None) -> dict[str, str]:
    """'a.jsonl=<sha>,b.jsonl=<sha>' -> {name: sha} (the format of the rh.data/rh.pool labels)."""
    out = {}
    for item in (label or "").split(","):
        if "=" in item:
            name, sha = item.split("=", 1)
            out[name.strip()] = sha.strip()
    return out


def _pinned_data_sha256() -> dict[str, str | None]:
    """file name -> sha256 pinned in the data registry (sandbox.data.DATA_FILES), else the one recorded when a
    copy here matched its pinned git blob id (data manifest), else None."""
    from sandbox.data import DATA_FILES, local_files, read_manifest

    verified = read_manifest()
    out = {f.filename: f.sha256 or verified.get(f.filename, {}).get("sha256") for f in DATA_FILES.values()}
    return {**out, **{name: src.sha256 for name, src in local_files().items()}}   # repo-kept sets: sha256 pins


# --------------------------------------------------------------------------------------------------
# daemon / image
# --------------------------------------------------------------------------------------------------
def _client(timeout: int = 30):
    import docker  # the SDK is a project dependency, but keep `import sandbox` free of it

    client = docker.from_env(timeout=timeout)
    client.ping()
    return client


def image_status(image: str = IMAGE) -> dict[str, Any]:
    """What `harness doctor` prints: is the docker backend usable, and is its image the pinned one?

    Keys: daemon (bool), daemon_error, server_version, image, present, id, size_mb, created, base,
    data {file: {image, pinned, match}}, data_match, pool {file: sha}, code_image / code_local (worker.py
    sha256 in the image / here), code_match, sandbox_match (whole package, informational), ok (daemon,
    present, data_match and code_match), reason (why not ok, or None).
    """
    st: dict[str, Any] = {"daemon": False, "daemon_error": None, "server_version": None, "image": image,
                          "present": False, "data_match": False, "code_match": False, "ok": False}
    try:
        client = _client(timeout=10)
        st["daemon"] = True
        st["server_version"] = client.version().get("Version")
    except Exception as e:  # no SDK, no socket, permission denied, daemon down ...
        st["daemon_error"] = f"{type(e).__name__}: {e}"
        st["reason"] = os.environ.get("RH_DOCKER_SKIP_REASON") or f"no Docker daemon answers ({st['daemon_error']})"
        return st
    try:
        img = client.images.get(image)
    except Exception as e:
        st["reason"] = f"image {image} not present ({type(e).__name__}); build it with `make image`"
        return st
    finally:
        client.close()
    labels = img.labels or {}
    st.update(present=True, id=img.id, size_mb=round(img.attrs.get("Size", 0) / 2**20, 1),
              created=img.attrs.get("Created"), base=labels.get("rh.base.image"),
              pool=_parse_hash_list(labels.get("rh.pool.sha256")))
    in_image = _parse_hash_list(labels.get("rh.data.sha256"))
    blobs = _parse_hash_list(labels.get("rh.data.git_blob"))    # absent on images built before the blob pins
    pinned = _pinned_data_sha256()
    from sandbox.data import DATA_FILES

    pinned_blob = {f.filename: f.git_blob for f in DATA_FILES.values()}
    # every file the image carries must be a pinned one with the pinned hash, and it must carry the test split
    st["data"] = {name: {"image": sha, "pinned": pinned.get(name),
                         "match": sha == pinned.get(name) and (name not in pinned_blob    # repo-kept: sha256 only
                                                               or blobs.get(name, pinned_blob[name]) == pinned_blob[name])}
                  for name, sha in sorted(in_image.items())}

    st["data_match"] = DATA_FILES["test"].filename in in_image and all(d["match"] for d in st["data"].values())
    st["code_image"] = labels.get("rh.worker.sha256")
    st["code_local"] = worker_hash()
    st["code_match"] = st["code_image"] == st["code_local"]
    st["sandbox_match"] = labels.get("rh.sandbox.sha256") == code_hash()  # informational
    st["ok"] = st["data_match"] and st["code_match"]
    if not st["data_match"]:
        st["reason"] = f"image {image} data labels do not match the pinned hashes: {st['data']}"
    elif not st["code_match"]:
        st["reason"] = (f"image {image} is stale: its sandbox/worker.py {str(st['code_image'])[:12]} != this "
                        f"checkout's {st['code_local'][:12]}; rebuild with `make image`")
    else:
        st["reason"] = None
    return st


# --------------------------------------------------------------------------------------------------
# one `docker exec` session that looks like a subprocess.Popen with stdin/stdout pipes
# --------------------------------------------------------------------------------------------------
class _StdinWriter:
    """Write end of the exec's attached stdin (a raw socket); close() half-closes it: EOF for the worker."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self.closed = False

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass


class _StderrTail:
    """The last lines the worker wrote to stderr (for 'worker did not start' messages)."""

    def __init__(self, maxlen: int = 200):
        self.lines: deque[bytes] = deque(maxlen=maxlen)

    def read(self) -> bytes:
        return b"".join(self.lines)

    def close(self) -> None:
        pass


class ExecProcess:
    """`argv` run by `docker exec` in a running container, shaped like subprocess.Popen(stdin=PIPE, stdout=PIPE).

    stdin: writes go to the exec's attached socket. stdout: a real pipe (so select/readline work as for a
    local process), fed by a thread that splits the exec's multiplexed stream (8-byte frame header: stream
    id, 3 zero bytes, big-endian length) into stdout -> the pipe and stderr -> a bounded tail.
    """

    def __init__(self, container, argv, environment: dict[str, str] | None = None, workdir: str = "/work",
                 user: str = ""):
        self._api = container.client.api
        self._container = container
        self.args = list(argv)
        self._exec_id = self._api.exec_create(container.id, self.args, stdin=True, stdout=True, stderr=True,
                                              tty=False, environment=environment, workdir=workdir,
                                              user=user)["Id"]
        self._sock_io = self._api.exec_start(self._exec_id, socket=True)
        self._sock: socket.socket = getattr(self._sock_io, "_sock", self._sock_io)
        self._sock.settimeout(None)  # the SDK's HTTP timeout would end a quiet worker's stream
        self.stdin = _StdinWriter(self._sock)
        r, self._out_w = os.pipe()
        self.stdout = os.fdopen(r, "rb")
        self.stderr = _StderrTail()
        self.returncode: int | None = None
        self._reader = threading.Thread(target=self._demux, name=f"exec-{self._exec_id[:8]}", daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes | None:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def _demux(self) -> None:
        try:
            while True:
                header = self._recv_exact(8)
                if header is None:
                    break
                stream, length = header[0], struct.unpack(">I", header[4:8])[0]
                payload = self._recv_exact(length) if length else b""
                if payload is None:
                    break
                if stream == 1:
                    _write_all(self._out_w, payload)
                else:
                    self.stderr.lines.append(payload)
        except OSError:
            pass  # socket closed under us (kill / close)
        finally:
            try:
                os.close(self._out_w)  # EOF for whoever reads stdout
            except OSError:
                pass

    def poll(self) -> int | None:
        # running while the attached stream is open; then ask the daemon for the exit code
        if self.returncode is None and not self._reader.is_alive():
            try:
                code = self._api.exec_inspect(self._exec_id).get("ExitCode")
            except Exception:
                code = None
            self.returncode = -1 if code is None else int(code)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._reader.join(timeout)
        if self._reader.is_alive():
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.poll()  # type: ignore[return-value]

    def kill(self) -> None:
        """Exec sessions cannot be signalled through the API: SIGKILL everything in the container (the
        worker and any orphaned program; pid 1, the reaper, is immune), then drop the stream."""
        _kill_all_but_init(self._container)
        self.stdin.close()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    terminate = kill

    def close(self) -> None:
        """Drop the stream and our pipe end (the process itself ends with its container)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the demux thread out of recv()
        except OSError:
            pass
        self._reader.join(timeout=5)
        for f in (self._sock_io, self._sock, self.stdout):
            try:
                f.close()
            except OSError:
                pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _kill_all_but_init(container) -> None:
    # os.kill(-1, ...) signals every process the caller may signal except itself and the namespace's init;
    # as root with CAP_KILL that is the worker (root) and the programs (nobody)
    try:
        res = container.exec_run(["python3", "-S", "-c", "import os, signal\ntry: os.kill(-1, signal.SIGKILL)\n"
                                                         "except ProcessLookupError: pass"], user=WORKER_USER)
        if res.exit_code != 0:
            log.warning("docker: sweeping container %s failed: %s", container.short_id, res.output[-500:])
    except Exception as e:  # the container may be gone already (close); anything else is worth a line
        log.warning("docker: sweeping container %s failed: %s", getattr(container, "short_id", "?"), e)


# --------------------------------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------------------------------
# pid 1 of the container: drops to the image's non-root user (argv[1]), then reaps whatever the programs
# orphan; as a namespace init with no handler it ignores the SIGKILL sweep that clears the container.
REAPER = ("import os, signal, sys\n"
          "uid, gid = map(int, sys.argv[1].split(':'))\n"
          "os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
          "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])\n"
          "while True:\n"
          "    try:\n"
          "        while os.waitpid(-1, os.WNOHANG)[0]: pass\n"
          "    except ChildProcessError: pass\n"
          "    signal.sigtimedwait([signal.SIGCHLD], 5)\n")


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def reap_leaked(client=None) -> int:
    """Remove grader containers whose owning interpreter (on this host) no longer exists."""
    client = client or _client()
    host, n = socket.gethostname(), 0
    for c in client.containers.list(all=True, filters={"label": CONTAINER_LABEL}):
        h, _, pid = c.labels.get(CONTAINER_LABEL, "").rpartition(":")
        if h != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # owner alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        _remove_container(c)
        n += 1
    return n


def _remove_container(container) -> None:
    try:
        container.remove(force=True)
    except Exception:
        pass


def _cgroup_driver(client) -> str | None:
    try:
        return client.info().get("CgroupDriver")
    except Exception:
        return None


class GraderContainer:
    """One locked-down, idle container of the pinned image; workers are exec'd into it."""

    def __init__(self, image: str = IMAGE, cpus: float = 2.0, mem_limit: str = "3g", pids_limit: int = 256,
                 work_tmpfs: str = "512m"):
        client = _client()
        reap_leaked(client)
        t0 = time.monotonic()
        self.image = image
        uid, _, gid = (client.images.get(image).attrs["Config"].get("User") or "").partition(":")
        if not uid.isdigit() or uid == "0":
            raise RuntimeError(f"{image} must have a numeric non-root USER, has {uid!r}")
        self.user = f"{uid}:{gid or uid}"
        self.container = client.containers.run(
            image,
            command=["python3", "-S", "-c", REAPER, self.user],
            # started as root only so that execs as root get WORKER_CAPS (docker gives a non-root container's
            # execs no effective capabilities); pid 1 drops to the image's user at once
            user="0",
            detach=True,
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            cap_add=list(WORKER_CAPS),        # a bounding set: only the root worker exec ever holds them
            security_opt=["no-new-privileges"],
            pids_limit=pids_limit,
            mem_limit=mem_limit,
            memswap_limit=mem_limit,          # no swap on top of the memory limit
            nano_cpus=int(cpus * 1e9),
            # The container is ONE group to the CPU scheduler, by default nested in docker's own group (weight
            # of one process): on a loaded machine its programs got about half the CPU of the process backend's
            # (measured), so wall-clock timeouts differed. Weigh it like `cpus` host processes instead; with
            # the cgroupfs driver that needs the group at the top level (systemd drivers keep their default).
            cpu_shares=int(1024 * cpus),
            **({"cgroup_parent": "/"} if _cgroup_driver(client) == "cgroupfs" else {}),
            # root-owned like the process backend's private /tmp: programs (nobody) write only in their
            # own job dir, which the worker creates under /work and chowns to them. No /tmp mount: the
            # image's /tmp stays on the read-only root (a tmpfs there would copy up its 1777 mode).
            tmpfs={"/work": f"rw,nosuid,nodev,size={work_tmpfs},uid=0,gid=0,mode=0755"},
            ipc_mode="private",
            environment={"HOME": "/work", "LANG": "C.UTF-8"},
            labels={CONTAINER_LABEL: _owner(), "rh.grader.image": image},
            stop_signal="SIGKILL",
        )
        self.start_s = time.monotonic() - t0
        # removed on close(), else at interpreter exit (atexit runs the finalizer once)
        self._finalizer = weakref.finalize(self, _remove_container, self.container)
        atexit.register(self._finalizer)

    def spawn(self, argv, environment: dict[str, str] | None = None, user: str = "") -> ExecProcess:
        return ExecProcess(self.container, argv, environment=environment, user=user)

    def exec(self, argv: list[str], user: str = "") -> tuple[int, str]:
        """Run a short command to completion: (exit code, stdout + stderr)."""
        res = self.container.exec_run(argv, user=user)
        return res.exit_code, (res.output or b"").decode("utf-8", "replace")

    def sweep(self) -> None:
        _kill_all_but_init(self.container)

    def close(self) -> None:
        self._finalizer()


# --------------------------------------------------------------------------------------------------
# the executor
# --------------------------------------------------------------------------------------------------
def docker_available(image: str = IMAGE) -> tuple[bool, str]:
    """(usable, why) for sandbox.backends.make_executor: daemon answers, image present, data and code pinned."""
    st = image_status(image)
    if st["ok"]:
        return True, f"daemon {st['server_version']}, image {image} ({str(st['id'])[7:19]})"
    return False, st["reason"] or "unknown"


class DockerExecutor(WorkerExecutor):
    """The fork server inside one long-lived container of the pinned image (see the module docstring)."""

    kind = "docker"
    isolated_by = "docker"

    def __init__(self, workers: int = 2, image: str = IMAGE, mem_limit: str | None = None,
                 pids_limit: int = 256, isolation: str | None = None, allow_unsandboxed: bool | None = None):
        # `isolation` / `allow_unsandboxed` belong to the process backend; make_executor passes the same kwargs
        super().__init__(workers)
        self.image = image
        cpus = float(min(self.workers, os.cpu_count() or 1))
        # RLIMIT_AS of each running program plus the worker, the reaper and the /work tmpfs
        mem_limit = mem_limit or f"{self.workers * Limits().memory_mb + 1024}m"
        self.container = GraderContainer(image, cpus=cpus, mem_limit=mem_limit, pids_limit=pids_limit)
        self.description = (f"docker backend: fork server in {image} (network none, read-only root, capabilities "
                            f"dropped but the worker's {len(WORKER_CAPS)}, no-new-privileges, programs as nobody, "
                            f"{cpus:g} cpu, {mem_limit} memory, {pids_limit} pids)")
        log.info("%s; container %s started in %.2fs", self.description, self.container.container.short_id,
                 self.container.start_s)

    @staticmethod
    def available(image: str = IMAGE) -> bool:
        return docker_available(image)[0]

    def _spawn(self) -> ExecProcess:
        # PYTHONHASHSEED=0 as on the host (the worker would re-exec itself to get it otherwise)
        return self.container.spawn(
            ["python3", "-S", f"{IMAGE_ROOT}/sandbox/worker.py", "--jobs", str(self.workers), "--base-dir", "/work"],
            environment={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, user=WORKER_USER)

    def _kill(self) -> None:
        super()._kill()
        # a program that killed the worker leaves its orphaned siblings running: clear the container
        self.container.sweep()

    def close(self) -> None:
        # removing the container ends the worker and everything else in it; no kill round trips needed
        proc, self._proc = self._proc, None
        self.container.close()
        if proc is not None:
            proc.close()
