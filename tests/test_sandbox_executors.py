"""The fork server's protocol and the client's crash recovery (process backend)."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from sandbox.backends import make_executor
from sandbox.executors import (WORKER_PATH, ExecutorError, Job, Limits, ProcessExecutor, SubprocessExecutor,
                               WorkerExecutor, _worker_env)

FAST = Limits(timeout_s=3.0, cpu_s=1, memory_mb=256, max_output=1000)


@pytest.fixture(scope="module")
def ex():
    with ProcessExecutor(workers=2) as e:
        yield e


def job(i, code, **kw):
    kw.setdefault("limits", FAST)
    return Job(id=str(i), code=code, **kw)


def test_protocol_statuses(ex):
    res = ex.run_many([
        job(0, "import os\nprint('out', __args__)\nos.write(__result_fd__, b'secret-channel')\n"
               "open('result.json', 'w').write('{}')", args={"a": 1}, read_files=("result.json", "missing")),
        job(1, "while True: pass"),
        job(2, "x = bytearray(10**9)"),
        job(3, "while True: print('y' * 1000)"),
        job(4, "raise ValueError('boom')"),
        job(5, "import sys\nsys.exit(3)"),
        job(6, "print(x_from_setup)", setup="x_from_setup = 41 + 1"),
    ])
    assert [r.id for r in res] == [str(i) for i in range(7)]
    r = res[0]
    assert r.status == "ok" and r.stdout == "out {'a': 1}\n" and r.result == b"secret-channel"
    assert r.files == {"result.json": b"{}", "missing": None}
    assert res[1].status == "timeout"
    assert res[2].status == "memory"
    assert res[3].status == "output_limit" and len(res[3].stdout) <= FAST.max_output and res[3].truncated
    assert res[4].status == "error" and "boom" in res[4].stderr
    assert res[5].status == "error" and res[5].exit_code == 3
    assert res[6].stdout == "42\n"
    assert ex.hello["protocol"] == 1


def test_children_are_unprivileged_and_isolated(ex):
    code = ("import os, resource\nprint(os.getuid() != 0 or os.geteuid() != 0, resource.getrlimit(resource.RLIMIT_NPROC)[0],"
            " os.getcwd() != '/', len(os.listdir('.')), sorted(os.environ))")
    (r,) = ex.run_many([job(0, code)])
    assert r.stdout.startswith("True 0 True 0 ['HOME', 'LANG', 'PATH', 'TMPDIR']")


def test_symlinked_result_file_is_not_followed(ex):
    (r,) = ex.run_many([job(0, "import os\nos.symlink('/etc/hostname', 'result.json')", read_files=("result.json",))])
    assert r.files["result.json"] is None


def test_hash_seed_is_fixed(ex):
    code = "print(list({'apple', 'banana', 'cherry', 'durian', 'elder'}))"
    a = ex.run_many([job(0, code)])[0].stdout
    with ProcessExecutor(workers=1) as other:
        b = other.run_many([job(0, code)])[0].stdout
    assert a == b


class _SameUidExecutor(WorkerExecutor):
    """Children keep the worker's uid, so a program CAN kill the worker (as inside a non-root container)."""
    kind = "test-same-uid"

    def _spawn(self):
        return subprocess.Popen([sys.executable, "-S", str(WORKER_PATH), "--jobs", "2", "--child-uid", str(os.geteuid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=_worker_env(), start_new_session=True)


def test_a_program_killing_the_worker_only_fails_itself():
    killer = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    with _SameUidExecutor(workers=2) as e:
        res = e.run_many([job(i, "import time\ntime.sleep(0.3)\nprint('fine')") for i in range(4)]
                         + [job("k", killer)] + [job(i, "print('fine')") for i in range(4, 8)])
        assert [r.status for r in res].count("worker_killed") == 1
        assert res[4].status == "worker_killed"
        assert all(r.status == "ok" and r.stdout == "fine\n" for i, r in enumerate(res) if i != 4)
        assert e.run_many([job(0, "print(1)")])[0].stdout == "1\n"  # and it keeps working


def test_worker_killed_from_outside_mid_batch_recovers(ex):
    ex.run_many([job("warm", "pass")])
    pid = ex._proc.pid
    threading.Timer(0.5, lambda: os.killpg(pid, 9)).start()
    res = ex.run_many([job(i, "import time\ntime.sleep(0.2)\nprint(%d)" % i) for i in range(12)])
    assert [r.stdout for r in res] == [f"{i}\n" for i in range(12)]
    assert ex._proc.pid != pid


def test_self_kill_is_retried_alone_then_reported(ex):
    (r,) = ex.run_many([job(0, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")])
    assert r.status == "killed" and r.signal == 9


def test_naive_executor_matches(ex):
    jobs = [job(0, "print(sum(range(10)))"), job(1, "raise SystemExit(2)")]
    fast, naive = ex.run_many(jobs), SubprocessExecutor(workers=2, allow_unsandboxed=True).run_many(jobs)
    assert [(r.status, r.stdout, r.exit_code) for r in fast] == [(r.status, r.stdout, r.exit_code) for r in naive]


def test_make_executor_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown sandbox kind"):
        make_executor("vm")


def test_unstartable_worker_is_an_error_not_a_verdict():
    class Broken(WorkerExecutor):
        kind = "broken"

        def _spawn(self):
            return subprocess.Popen(["python3", "-c", "import sys; sys.stderr.write('nope'); sys.exit(1)"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    with pytest.raises(ExecutorError, match="worker did not start: nope"):
        Broken().run_many([job(0, "pass")])


def test_each_result_carries_the_programs_own_cpu_time(ex):
    """The compute floor of `make bench-grader` sums these: a 0.3 CPU-s loop must read ~0.3, a sleep ~0."""
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    busy, idle = ex.run_many([job("spin", spin), job("sleep", "import time\ntime.sleep(0.3)")])
    assert busy.status == idle.status == "ok"
    assert 0.28 <= busy.cpu_time_s < 1.0 and idle.cpu_time_s < 0.1
    assert idle.wall_s >= 0.3
