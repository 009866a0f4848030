"""The docker backend for real: the pinned image, the container's walls, and the same verdicts as the process backend.

Needs a Docker daemon and `make image`; otherwise every test here is skipped with the reason
(`.ci/run` starts dockerd and builds the image, so CI runs them).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sandbox.docker_executor import (IMAGE, WORKER_CAPS, DockerExecutor, docker_available, image_status,
                                     reap_leaked)
from sandbox.executors import Job, Limits, ProcessExecutor

REPO = Path(__file__).resolve().parent.parent
_OK, _WHY = docker_available()
pytestmark = [pytest.mark.docker, pytest.mark.skipif(not _OK, reason=f"docker backend unavailable: {_WHY}")]

# short limits keep the hostile cases quick; both backends get the same ones
LIMITS = Limits(timeout_s=4.0, cpu_s=3, memory_mb=512)


@pytest.fixture(scope="module")
def dock():
    with DockerExecutor(workers=2) as ex:
        yield ex


@pytest.fixture(scope="module")
def proc():
    with ProcessExecutor(workers=2) as ex:
        yield ex


def _docker_client():
    import docker

    return docker.from_env(timeout=30)


# ----------------------------------------------------------------------------------- the image
def test_image_is_the_pinned_one():
    st = image_status()
    assert st["ok"], st["reason"]
    from sandbox.data import DATA_FILES

    test_file = DATA_FILES["test"]
    assert st["data"][test_file.filename] == {"image": test_file.sha256, "pinned": test_file.sha256, "match": True}
    assert f"{test_file.filename}={test_file.git_blob}" in _docker_client().images.get(IMAGE).labels["rh.data.git_blob"]
    img = _docker_client().images.get(IMAGE)
    user = img.attrs["Config"]["User"]
    assert user.split(":")[0] not in ("", "0", "root")
    assert img.labels["rh.worker.sha256"] == st["code_local"]


# ----------------------------------------------------------------------------------- the walls
def test_container_is_locked_down(dock):
    attrs = _docker_client().containers.get(dock.container.container.id).attrs
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert {c.removeprefix("CAP_") for c in host["CapAdd"]} == set(WORKER_CAPS)  # bounding set of the worker
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["PidsLimit"] and host["PidsLimit"] > 0
    assert host["Memory"] > 0 and host["NanoCpus"] > 0
    assert set(host["Tmpfs"]) == {"/work"}
    # pid 1 runs as the image's non-root user (it starts as root only to let the worker exec hold WORKER_CAPS)
    code, out = dock.container.exec(["cat", "/proc/1/status"])
    uids = next(line.split()[1:] for line in out.splitlines() if line.startswith("Uid:"))
    assert code == 0 and set(uids) == {dock.container.user.split(":")[0]} and uids[0] != "0"


PROBE = textwrap.dedent("""
    import json, os, socket
    out = {"uid": os.getuid(), "euid": os.geteuid()}
    status = open("/proc/self/status").read()
    out["cap_eff"] = [l.split()[1] for l in status.splitlines() if l.startswith("CapEff")][0]
    out["no_new_privs"] = [l.split()[1] for l in status.splitlines() if l.startswith("NoNewPrivs")][0]
    out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    try:
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        out["connect"] = "connected"
    except OSError as e:
        out["connect"] = type(e).__name__
    out["writes"] = {}
    for path in ("/opt/rh/x", "/etc/x", "/usr/x", "/x", "/work/x", "/tmp/x", "../x"):
        try:
            open(path, "w").write("x")
            out["writes"][path] = "written"
        except OSError as e:
            out["writes"][path] = type(e).__name__
    out["secrets"] = {p: os.path.exists(p) for p in ("/var/run/docker.sock", "/root/.docker", "/work/main")}
    out["worker_proc"] = {}
    for what in ("cwd", "environ", "mem"):
        try:
            open(f"/proc/{os.getppid()}/{what}", "rb").read(1) if what != "cwd" else os.listdir(f"/proc/{os.getppid()}/cwd")
            out["worker_proc"][what] = "read"
        except OSError as e:
            out["worker_proc"][what] = type(e).__name__
    try:
        os.kill(os.getppid(), 0)
        out["signal_worker"] = "allowed"
    except OSError as e:
        out["signal_worker"] = type(e).__name__
    print(json.dumps(out))
""")


def test_programs_see_no_network_a_read_only_root_and_no_privileges(dock):
    r = dock.run(Job(id="probe", code=PROBE, limits=LIMITS))
    assert r.status == "ok", r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == out["euid"] == 65534                # nobody, as under a root process backend
    assert out["cap_eff"] == "0000000000000000" and out["no_new_privs"] == "1"
    assert out["interfaces"] == ["lo"]
    assert out["connect"] != "connected"
    assert all(v != "written" for v in out["writes"].values()), out["writes"]
    assert not any(out["secrets"].values()), out["secrets"]
    assert "read" not in out["worker_proc"].values(), out["worker_proc"]
    assert out["signal_worker"] == "PermissionError"


# ----------------------------------------------------------------------------------- same results
PROGRAMS = {
    "ok": "print(6 * 7)",
    "error": "raise ValueError('no')",
    "sys_exit_0": "import sys; sys.exit(0)",
    "os_exit_0": "import os; os._exit(0)",
    "busy_loop": "while True: pass",
    "sleep": "import time; time.sleep(1000)",
    "alloc": "x = []\nwhile True: x.append(bytearray(10**7))",
    "flood": "while True: print('y' * 4096)",
    "fork_bomb": "import os\nwhile True: os.fork()",
    "thread": "import threading; threading.Thread(target=print).start()",
    "socket": "import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)",
    "write_root": "open('/usr/evil', 'w').write('x')",
    "env": "import os; print(sorted(os.environ))",
    "big_file": "open('f', 'wb').write(b'0' * (8 << 20))",
    "result_fd": "import os; os.write(__result_fd__, b'via fd 3')",
    "write_tmp": "open('/tmp/x', 'w').write('x')",
    "write_parent": "open('../x', 'w').write('x')",
    "kill_parent": "import os, signal; os.kill(os.getppid(), signal.SIGKILL); print('still here')",
    "kill_everyone": "import os, signal; os.kill(-1, signal.SIGKILL); print('alone')",
    "caught_kill_parent": "import os\ntry: os.kill(os.getppid(), 9)\nexcept OSError as e: print(type(e).__name__)",
}


def test_exec_results_match_the_process_backend(dock, proc):
    jobs = [Job(id=k, code=v, limits=LIMITS) for k, v in PROGRAMS.items()]
    t0 = time.monotonic()
    got_d = {r.id: r for r in dock.run_many(jobs)}
    assert time.monotonic() - t0 < 60  # bounded: every hostile program ends by its limits
    got_p = {r.id: r for r in proc.run_many(jobs)}
    for k in PROGRAMS:
        d, p = got_d[k], got_p[k]
        assert (d.status, d.exit_code, d.stdout, d.result) == (p.status, p.exit_code, p.stdout, p.result), k
    assert got_d["ok"].stdout == "42\n" and got_d["busy_loop"].status == "timeout"
    assert got_d["alloc"].status == "memory" and got_d["flood"].status == "output_limit"


def _container_procs(dock) -> dict[int, str]:
    """pid -> real uid of every live (not zombie) process in the container but the one asking (as root)."""
    code, out = dock.container.exec(["python3", "-S", "-c", textwrap.dedent("""
        import json, os
        out = {}
        for p in (p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()):
            st = dict(l.split(':', 1) for l in open(f'/proc/{p}/status') if ':' in l)
            if not st['State'].strip().startswith('Z'):
                out[p] = st['Uid'].split()[0]
        print(json.dumps(out))""")], user="0")
    assert code == 0, out
    return {int(k): v for k, v in json.loads(out).items()}


def test_a_killed_worker_leaves_no_program_behind(dock):
    """When the client kills a worker (hung, or after a crash) the programs it forked -- in their own sessions,
    so not in its process group -- must not live on in the container."""
    dock.run(Job(id="warm", code="print(1)", limits=LIMITS))
    sleeper = Job(id="zz", code="import time; time.sleep(1000)", limits=Limits(timeout_s=600, cpu_s=600))
    dock._proc.stdin.write(json.dumps(sleeper.request()).encode() + b"\n")
    deadline = time.monotonic() + 20
    while "65534" not in _container_procs(dock).values():          # the program is running as nobody
        assert time.monotonic() < deadline
        time.sleep(0.2)
    dock._kill()
    left = _container_procs(dock)
    assert list(left) == [1], left                                 # only the reaper
    assert dock.run(Job(id="after", code="print(2)", limits=LIMITS)).stdout == "2\n"  # a fresh worker serves


# ----------------------------------------------------------------------------------- verdicts
def _grade_all(executor, items, limits=LIMITS):
    from sandbox.grader import Grader

    return Grader(executor, limits=limits).grade_many(items)


HOSTILE = {
    "sys_exit_at_import": "import sys\nsys.exit(0)\n",
    "os_exit_in_method": "class Solution:\n    def {m}(self, *a, **k):\n        import os\n        os._exit(0)\n",
    "patched_builtins": ("import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {{}})\n"
                         "class Solution:\n    def {m}(self, *a, **k):\n        return None\n"),
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "busy_loop": "class Solution:\n    def {m}(self, *a, **k):\n        while True: pass\n",
    "fork_bomb": "import os\nwhile True: os.fork()\n",
}


def _sample(problems, per_mode=2):
    seen: dict[str, int] = {}
    out = []
    for p in problems:
        if seen.get(p.mode, 0) < per_mode:
            seen[p.mode] = seen.get(p.mode, 0) + 1
            out.append(p)
    return out


def test_same_grade_records_as_the_process_backend(dock, proc, problems):
    from sandbox.loopholes import fence
    from sandbox.pool import pool_completions

    items, kinds = [], []
    for p in _sample(problems, per_mode=2):
        for kind, text in pool_completions(p):
            items.append((p, text, None))
            kinds.append(kind)
    hostile, hostile_kinds = [], []
    for p in _sample(problems, per_mode=1):
        for name, src in HOSTILE.items():
            hostile.append((p, fence(src.format(m=p.method_name)), None))
            hostile_kinds.append(name)
    fast = Limits(timeout_s=2.0, cpu_s=1, memory_mb=512)  # the hostile ones only burn their limits
    rec_d = _grade_all(dock, items) + _grade_all(dock, hostile, fast)
    rec_p = _grade_all(proc, items) + _grade_all(proc, hostile, fast)
    items, kinds = items + hostile, kinds + hostile_kinds
    diff = [(k, p.id, d, q) for k, (p, _, _), d, q in zip(kinds, items, rec_d, rec_p) if d != q]
    assert not diff, diff
    # and the records say what they should (the comparison is not between two broken graders)
    by_kind: dict[str, list] = {}
    for k, r in zip(kinds, rec_d):
        by_kind.setdefault(k, []).append(r)
    assert all(r.gt_correct for r in by_kind["canonical"])
    assert all(r.exploited for r in by_kind["hack_stub"])
    assert all(r.category == "incorrect" for r in by_kind["wrong_stub"])
    for name in HOSTILE:
        assert not any(r.gt_correct or r.passed for r in by_kind[name]), name


def test_caught_kill_of_the_worker_then_a_correct_solution(dock, proc, problems):
    """Programs run as nobody under both backends, so the kill fails the same way and the solution counts."""
    from sandbox.loopholes import fence

    p = next(q for q in problems if q.mode == "sentinel")
    src = ("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n"
           + p.canonical_solution)
    item = [(p, fence(src), None)]
    rec = _grade_all(dock, item)
    assert rec == _grade_all(proc, item) and rec[0].gt_correct


@pytest.mark.slow
def test_every_canonical_and_stub_hack_identically_graded(dock, proc, problems):
    """All 119 canonical solutions are gt_correct under docker, and docker == process on them and the hacks.

    A few canonical solutions need most of the CPU limit; on a loaded machine they can time out under
    either backend. Those (and only those: a diagnostic status of 'timeout' on either side) are graded
    again alone before comparing.
    """
    from sandbox.grader import Grader
    from sandbox.pool import pool_completions

    items, kinds = [], []
    for p in problems:
        for kind, text in pool_completions(p):
            if kind in ("canonical", "hack_stub"):
                items.append((p, text, None))
                kinds.append(kind)
    g_d, g_p = Grader(dock, limits=Limits()), Grader(proc, limits=Limits())  # the grader's real limits
    rec_d, rec_p = g_d.grade_many_detailed(items), g_p.grade_many_detailed(items)
    final_d, final_p = [r for r, _ in rec_d], [r for r, _ in rec_p]
    for i, ((rd, info_d), (rp, info_p)) in enumerate(zip(rec_d, rec_p)):
        if "timeout" in (*info_d.values(), *info_p.values()):
            final_d[i], final_p[i] = g_d.grade_many([items[i]])[0], g_p.grade_many([items[i]])[0]
    diff = [(kinds[i], items[i][0].id, d, q) for i, (d, q) in enumerate(zip(final_d, final_p)) if d != q]
    assert not diff, diff
    canon = [r for k, r in zip(kinds, final_d) if k == "canonical"]
    assert len(canon) == len(problems) and all(r.gt_correct for r in canon)


# ----------------------------------------------------------------------------------- lifecycle
def _container_exists(cid: str) -> bool:
    import docker

    try:
        _docker_client().containers.get(cid)
        return True
    except docker.errors.NotFound:
        return False


def test_container_removed_on_close():
    ex = DockerExecutor(workers=1)
    cid = ex.container.container.id
    assert ex.run(Job(id="a", code="print(1)", limits=LIMITS)).stdout == "1\n"
    ex.close()
    assert not _container_exists(cid)


def _child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def test_container_removed_at_interpreter_exit_and_leaks_reaped():
    # a normal exit without close(): atexit removes it
    r = _child("from sandbox.docker_executor import DockerExecutor\n"
               "ex = DockerExecutor(workers=1)\nprint(ex.container.container.id)")
    assert r.returncode == 0, r.stderr
    assert not _container_exists(r.stdout.split()[-1])
    # SIGKILLed: nothing runs at exit, the container leaks until the next executor's (or this) reap
    r = _child("import os, signal\nfrom sandbox.docker_executor import DockerExecutor\n"
               "ex = DockerExecutor(workers=1)\nprint(ex.container.container.id, flush=True)\n"
               "os.kill(os.getpid(), signal.SIGKILL)")
    cid = r.stdout.split()[-1]
    assert r.returncode == -9
    reap_leaked()  # (another test process starting an executor right now may have reaped it already)
    assert not _container_exists(cid)
