"""Hostile programs: each gets a bounded-time 'not correct' verdict and the grader keeps working.

Parametrised over backends: `process` (bubblewrap), `process-plain` (the rlimit-only fallback; the
isolation checks it cannot pass are skipped with the reason) and `docker` (marked; skipped with the
reason when no daemon or image answers).
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

from sandbox.backends import make_executor
from sandbox.executors import ExecutorError, Limits, ProcessExecutor
from sandbox.exploits import fenced
from sandbox.grader import Grader

LIMITS = Limits(timeout_s=3.0, cpu_s=1, memory_mb=512, max_output=4096)
BOUND_S = 2 * LIMITS.timeout_s + 20   # two phases at most, plus slack for a busy 2-core machine
SECRET = "rh-secret-7f3a9c"


@pytest.fixture(scope="module", params=["process", "process-plain", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request):
    os.environ["RH_TEST_SECRET"] = SECRET  # present in the grading process; must not reach programs
    if request.param == "docker":
        try:
            ex = make_executor("docker", workers=2)
        except ExecutorError as e:
            pytest.skip(os.environ.get("RH_DOCKER_SKIP_REASON") or f"docker backend unavailable: {e}")
    elif request.param == "process-plain":   # the plain rlimit path, explicitly opted in to
        ex = ProcessExecutor(workers=2, isolation="none", allow_unsandboxed=True)
    else:
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap not installed")
        ex = ProcessExecutor(workers=2, isolation="bwrap")
    with ex:
        yield request.param, Grader(ex, LIMITS)


@pytest.fixture(scope="module")
def problem(problems):
    """A run_tests-mode problem whose canonical solution needs ~2 ms of CPU (the check after each program)."""
    (p,) = [p for p in problems if p.id == 3329]
    assert p.mode == "run_tests"
    return p


def method(p, body: str) -> str:
    body = "\n".join("        " + line for line in body.strip("\n").splitlines())
    return f"class Solution:\n    def {p.method_name}(self, *a, **k):\n{body}\n"


HOSTILE = {
    "infinite_loop": lambda p: method(p, "while True:\n    pass"),
    "sleep_forever": lambda p: "import time\ntime.sleep(3600)\n" + method(p, "return 0"),
    "fork_bomb": lambda p: "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
    "threads": lambda p: "import threading\nfor _ in range(10**6):\n    threading.Thread(target=lambda: None).start()\n",
    "allocate": lambda p: method(p, "x = []\nwhile True:\n    x.append(bytearray(10**7))"),
    "stdout_flood": lambda p: method(p, "while True:\n    print('x' * 100000)"),
    "recursion_crash": lambda p: "import sys\nsys.setrecursionlimit(10**9)\ndef f(n):\n    return f(n + 1) + 1\n"
                                 + method(p, "return f(0)"),
    "os_exit_0": lambda p: "import os\nos._exit(0)\n",
    "sys_exit_0": lambda p: "import sys\nsys.exit(0)\n",
    "exit_in_method": lambda p: method(p, "import os\nos._exit(0)"),
    "kill_parent": lambda p: "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + method(p, "return 0"),
    "kill_group": lambda p: "import os, signal\ntry:\n    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\n"
                            "except OSError:\n    pass\nos.kill(os.getpid(), signal.SIGKILL)\n",
    "patch_builtins": lambda p: ("import builtins\nbuiltins.AssertionError = type('E', (Exception,), {})\n"
                                 "builtins.isinstance = lambda *a: True\nbuiltins.len = lambda *a: 0\n"
                                 + method(p, "return None")),
    "close_fds": lambda p: "import os\nfor fd in range(64):\n    try:\n        os.close(fd)\n    except OSError:\n"
                           "        pass\n" + method(p, "return 0"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_bounded_and_not_correct(backend, problem, name):
    kind, grader = backend
    t0 = time.monotonic()
    rec = grader.grade(problem, fenced(HOSTILE[name](problem)))
    took = time.monotonic() - t0
    assert not rec.gt_correct and not rec.passed and rec.category == "incorrect", rec
    assert took < BOUND_S, f"{name} took {took:.1f}s"
    # the grader still works afterwards
    ok = grader.grade(problem, fenced(problem.canonical_solution))
    assert ok.gt_correct and ok.category == "correct"


def _probe(grader, problem, body: str):
    """Run `body` at top level of a wrong solution; return (record, stdout of the oracle phase)."""
    from sandbox.executors import Job
    from sandbox.grader import PROGRAM_SRC, parse_gt_tests

    code = body + "\n" + method(problem, "return None")
    rec = grader.grade(problem, fenced(code))
    res = grader.executor.run(Job(id="probe", code=PROGRAM_SRC, setup=problem.setup_code, limits=LIMITS,
                                  args={"phase": "oracle", "mode": problem.mode, "src": code, "sentinel_attr": "verified",
                                        "calls": [t.call for t in parse_gt_tests(problem.gt_answer)]}))
    return rec, res.stdout


def test_environment_is_scrubbed(backend, problem):
    kind, grader = backend
    rec, out = _probe(grader, problem, "import os\nprint(sorted(os.environ.items()))")
    assert not rec.gt_correct
    assert SECRET not in out and "RH_TEST_SECRET" not in out
    assert "PATH" in out  # the probe did run


def test_host_files_are_invisible(backend, problem, tmp_path_factory):
    kind, grader = backend
    if kind == "process-plain":
        pytest.skip("plain-rlimit fallback has no filesystem isolation (world-readable files stay readable)")
    d = tmp_path_factory.mktemp("canary")
    os.chmod(d, 0o755)
    canary = d / "canary.txt"
    canary.write_text("CANARY-4d1e\n")
    os.chmod(canary, 0o644)
    rec, out = _probe(grader, problem, f"try:\n    print(open({str(canary)!r}).read())\nexcept OSError as e:\n"
                                       f"    print('blocked', type(e).__name__)")
    assert "blocked" in out and "CANARY-4d1e" not in out
    assert not rec.gt_correct


def test_writes_outside_work_dir_fail(backend, problem, tmp_path_factory):
    kind, grader = backend
    d = tmp_path_factory.mktemp("target")
    os.chmod(d, 0o777)  # even a world-writable host dir must stay untouched (not mounted in the sandbox)
    target = d / "pwned"
    if kind == "process-plain":
        pytest.skip("plain-rlimit fallback cannot hide world-writable host dirs")
    rec, out = _probe(grader, problem, f"for t in [{str(target)!r}, '/pwned', '/usr/pwned', '/tmp/../pwned']:\n"
                                       f"    try:\n        open(t, 'w').write('x')\n        print('wrote', t)\n"
                                       f"    except OSError as e:\n        print('blocked', t)")
    assert not target.exists()
    assert "wrote" not in out and out.count("blocked") == 4
    assert not rec.gt_correct


def test_no_network(backend, problem):
    kind, grader = backend
    if kind == "process-plain":
        pytest.skip("plain-rlimit fallback has no network isolation")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    hits = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                hits.append(conn)
            except OSError:
                pass

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        rec, out = _probe(grader, problem,
                          f"import socket\nfor host in ['127.0.0.1', '1.1.1.1']:\n    try:\n"
                          f"        s = socket.create_connection((host, {port if True else 0}), timeout=1)\n"
                          f"        print('connected', host)\n    except OSError as e:\n        print('blocked', host)")
    finally:
        stop.set()
        th.join(2)
        srv.close()
    assert not hits and "connected" not in out and out.count("blocked") == 2
    assert not rec.gt_correct
