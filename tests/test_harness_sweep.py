"""Sweep planning and execution (local and Ray) with a stand-in for training."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.arms import ARMS, BASELINE, METHOD
from harness.orchestrate.runs import prepare_run_dir
from harness.orchestrate.sweep import plan, run_local, run_ray
from harness.rundir import is_complete, read_summary, scan_runs, write_summary
from policy.config import TrainConfig


def fake_train(config: TrainConfig, rdir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Writes what the loop would: a summary whose rates depend on arm and seed, and a 'resumed' marker."""
    if config.arm == "rebound" and config.seed == 42:
        raise RuntimeError("boom")
    summary = dict(arm=config.arm, seed=config.seed, preset=config.preset, complete=True, steps=config.steps,
                   hack_rate=0.5 if config.arm == BASELINE else 0.1, pass_rate=0.3, kl=0.0, mean_cos=0.0,
                   frac_fired=0.0, grad_norm=1.0, wall_s=0.0, hashes={"model": "m", "data": "d", "pool": "p", "v": ""},
                   resumed=resume)
    write_summary(rdir, summary)
    return summary


def test_local_sweep_skips_resumes_and_survives_a_failure(tmp_path):
    arms = [BASELINE, METHOD, "rebound"]
    # seed 41 vanilla finished earlier, seed 41 erase interrupted (config.json only)
    first = plan("smoke", [BASELINE, METHOD], [41], tmp_path)
    run_local(first[:1], train_fn=fake_train, progress=False)
    prepare_run_dir(first[1].path, first[1].config, resume=False, force=False)
    (first[1].path / "metrics.jsonl").write_text('{"step": 1}\n')
    assert not is_complete(first[1].path)

    jobs = plan("smoke", arms, [41, 42], tmp_path)
    actions = {(j.arm, j.seed): j.action for j in jobs}
    assert actions[(BASELINE, 41)] == "skip" and actions[(METHOD, 41)] == "resume"
    assert actions[(METHOD, 42)] == "fresh"
    assert [j.seed for j in jobs] == [41, 41, 41, 42, 42, 42]      # seed-major
    run_local(jobs, train_fn=fake_train, progress=False)
    status = {(j.arm, j.seed): j.status for j in jobs}
    assert status[(BASELINE, 41)] == "skipped" and status[("rebound", 42)] == "failed"
    assert sum(s == "done" for s in status.values()) == 4
    assert read_summary(first[1].path)["resumed"] is True
    done = {(r.arm, r.seed) for r in scan_runs(tmp_path) if r.complete}
    assert len(done) == 5 and ("rebound", 42) not in done


def test_sweep_default_matrix_is_all_arms(tmp_path):
    jobs = plan("smoke", list(ARMS), [41, 42, 43], tmp_path)
    assert len(jobs) == 3 * len(ARMS)
    assert {j.config.arm for j in jobs} == set(ARMS)
    assert all(j.path == tmp_path / "smoke" / j.arm / f"seed{j.seed}" for j in jobs)


def _ray_fake(config_dict: dict, path: str, resume: bool) -> dict:
    # runs in a Ray worker process: rebuild the config and write the summary there
    import os

    from harness.rundir import write_summary
    from policy.config import TrainConfig
    cfg = TrainConfig.from_dict(config_dict)
    s = dict(arm=cfg.arm, seed=cfg.seed, preset=cfg.preset, complete=True, steps=cfg.steps, hack_rate=0.2,
             pass_rate=0.4, kl=0.0, mean_cos=0.0, frac_fired=0.0, grad_norm=1.0, wall_s=0.0,
             hashes={"model": "m", "data": "d", "pool": "p", "v": ""}, pid=os.getpid())
    write_summary(path, s)
    return s


@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="ray not installed (optional extra: pip install -e '.[ray]')")
def test_ray_sweep_on_a_local_instance(tmp_path):
    import os

    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(__import__(__name__, fromlist=["_"]))   # workers can't import tests/
    jobs = plan("smoke", [BASELINE, METHOD], [41, 42], tmp_path)
    try:
        run_ray(jobs, None, task_fn=_ray_fake,
                init_kwargs={"num_cpus": 2, "num_gpus": 0, "object_store_memory": 80 * 2**20})
    finally:
        ray.shutdown()
    assert all(j.status == "done" for j in jobs), [(j.name, j.error) for j in jobs]
    assert all(is_complete(j.path) for j in jobs)
    assert all(read_summary(j.path)["pid"] != os.getpid() for j in jobs)   # really ran in workers


def test_failed_run_reporting(tmp_path):
    from rich.console import Console

    def corrupt(config, rdir, **kw):
        raise ValueError("V file artifacts/v/x.safetensors is corrupt")

    def bug(config, rdir, **kw):
        raise RuntimeError("shape mismatch")

    for fn, one_line in ((corrupt, True), (bug, False)):
        con = Console(record=True, width=200)
        jobs = run_local(plan("smoke", [METHOD], [41], tmp_path, force=True), train_fn=fn, progress=False,
                         console=con, force=True)
        text = con.export_text()
        assert jobs[0].status == "failed"
        assert ("Traceback" in text) is not one_line
        assert (f"smoke/{METHOD}/seed41 failed: ValueError: V file" in text) is one_line


# --- local, N jobs at a time (spawned worker processes) -------------------------------------------------
# The stand-ins below run in spawned workers, which import them from this module by name.

def _rendezvous_train(config: TrainConfig, rdir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Prints (to be found in run.log, not on the console) and waits until two jobs have started: a sequential
    sweep would wait here in vain, so finishing proves two ran at once."""
    import os
    import sys
    import time

    print(f"stdout of {config.arm}/{config.seed}")
    print(f"stderr of {config.arm}/{config.seed}", file=sys.stderr)
    os.write(1, b"fd-level write\n")
    started = rdir.parents[2] / "started"
    started.mkdir(exist_ok=True)
    (started / f"{config.arm}-{config.seed}").touch()
    deadline = time.time() + 30
    while len(list(started.iterdir())) < 2:
        if time.time() > deadline:
            raise RuntimeError("no other job ran alongside this one")
        time.sleep(0.05)
    s = fake_train(config, rdir, resume)
    write_summary(rdir, {**s, "pid": os.getpid()})
    return read_summary(rdir)


def _failing_train(config: TrainConfig, rdir: Path, resume: bool = False, progress: bool = True) -> dict:
    """rebound/42 raises (fake_train), erase/42 dies without a word (a segfault / OOM kill), the rest finish."""
    import os
    if config.arm == METHOD and config.seed == 42:
        os._exit(3)
    return fake_train(config, rdir, resume)


def _interrupted_train(config: TrainConfig, rdir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Logs step 1, then the vanilla job presses Ctrl-C on the sweep (SIGINT to the parent only); all sleep."""
    import os
    import signal
    import time
    (rdir / "metrics.jsonl").write_text('{"step": 1}\n')
    (rdir / "pid").write_text(str(os.getpid()))
    if config.arm == BASELINE:
        while not (rdir.parent.parent / METHOD / f"seed{config.seed}" / "pid").exists():
            time.sleep(0.05)     # the other job is running too
        os.kill(os.getppid(), signal.SIGINT)
    time.sleep(120)
    raise AssertionError("should have been terminated")


def test_parallel_sweep_runs_all_jobs_at_once_logging_to_run_log(tmp_path):
    import os

    from rich.console import Console

    from harness.orchestrate.sweep import LOG_FILE
    con = Console(record=True, width=200)
    jobs = run_local(plan("smoke", [BASELINE, METHOD], [41, 43], tmp_path), train_fn=_rendezvous_train,
                     console=con, n_jobs=2)
    assert [j.status for j in jobs] == ["done"] * 4, [(j.name, j.error) for j in jobs]
    pids = {read_summary(j.path)["pid"] for j in jobs}
    assert os.getpid() not in pids and len(pids) == 2            # two worker processes, two jobs each
    assert all(j.summary["pid"] in pids and j.wall_s > 0 for j in jobs)
    for j in jobs:
        log = (j.path / LOG_FILE).read_text()
        assert f"stdout of {j.arm}/{j.seed}" in log and f"stderr of {j.arm}/{j.seed}" in log
        assert "fd-level write" in log
    text = con.export_text()
    assert "stdout of" not in text and "stderr of" not in text and "fd-level" not in text
    assert f"smoke/{METHOD}/seed43 done" in text


def test_parallel_failure_does_not_stop_the_others(tmp_path):
    from rich.console import Console

    from harness.cli import _finish
    con = Console(record=True, width=200)
    jobs = run_local(plan("smoke", [BASELINE, METHOD, "rebound"], [41, 42], tmp_path), train_fn=_failing_train,
                     console=con, n_jobs=2)
    status = {(j.arm, j.seed): j for j in jobs}
    assert status[("rebound", 42)].status == "failed" and "RuntimeError: boom" in status[("rebound", 42)].error
    assert status[(METHOD, 42)].status == "failed" and "exited with code 3" in status[(METHOD, 42)].error
    assert sum(j.status == "done" for j in jobs) == 4
    assert "Traceback" in con.export_text()                       # a bug, not an artifact error: traceback shown
    assert "RuntimeError: boom" in (status[("rebound", 42)].path / "run.log").read_text()
    with pytest.raises(Exception) as err:                           # the CLI's exit: non-zero, both named
        _finish(jobs, con)
    assert err.value.exit_code == 1 and "2 of 6 run(s) failed" in str(err.value)


def test_parallel_sweep_skips_complete_and_resumes_partial(tmp_path):
    first = plan("smoke", [BASELINE, METHOD], [41], tmp_path)
    run_local(first[:1], train_fn=fake_train, progress=False)
    before = (first[0].path / "summary.json").read_text()
    prepare_run_dir(first[1].path, first[1].config, resume=False, force=False)
    (first[1].path / "metrics.jsonl").write_text('{"step": 1}\n')

    jobs = plan("smoke", [BASELINE, METHOD], [41, 43], tmp_path)
    assert [j.action for j in jobs] == ["skip", "resume", "fresh", "fresh"]
    run_local(jobs, train_fn=fake_train, n_jobs=2)
    assert [j.status for j in jobs] == ["skipped", "done", "done", "done"]
    assert (first[0].path / "summary.json").read_text() == before    # not run again
    assert jobs[0].summary["arm"] == BASELINE                       # read for the status table
    assert read_summary(first[1].path)["resumed"] is True
    assert [read_summary(j.path)["resumed"] for j in jobs[2:]] == [False, False]
    assert not (first[0].path / "run.log").exists()


def test_parallel_ctrl_c_stops_every_worker_and_leaves_resumable_dirs(tmp_path):
    import multiprocessing as mp
    import os
    import signal

    jobs = plan("smoke", [BASELINE, METHOD], [41, 42], tmp_path)
    # Ctrl-C as a terminal delivers it: Python's own handler. An earlier test in the same pytest worker may have
    # left another one installed (this test failed only inside the full suite, never alone).
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_local(jobs, train_fn=_interrupted_train, n_jobs=2)
    finally:
        signal.signal(signal.SIGINT, old)
    assert mp.active_children() == []
    for j in jobs[:2]:
        pid = int((j.path / "pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert j.status == "interrupted" and not is_complete(j.path)
    assert [j.status for j in jobs[2:]] == ["pending", "pending"]
    assert [j.action for j in plan("smoke", [BASELINE, METHOD], [41, 42], tmp_path)] == \
        ["resume", "resume", "fresh", "fresh"]


def test_cli_sweep_jobs_option(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import cli
    import harness.orchestrate.sweep
    seen = {}

    def fake_run_local(jobs, **kw):
        seen.update(kw)
        for j in jobs:
            j.status = "done"
        jobs[-1].status, jobs[-1].error = "failed", "RuntimeError: boom"
        return jobs

    monkeypatch.setattr(harness.orchestrate.sweep, "run_local", fake_run_local)
    args = ["sweep", "--preset", "smoke", "--seeds", "41", "--arm", f"{BASELINE},{METHOD}", "--out", str(tmp_path)]
    r = CliRunner().invoke(cli, args + ["--jobs", "2"])
    assert r.exit_code == 1 and seen["n_jobs"] == 2 and "1 of 2 run(s) failed" in r.output
    r = CliRunner().invoke(cli, args + ["--jobs", "auto"])
    assert seen["n_jobs"] == harness.orchestrate.sweep.available_cpus() >= 1
    for bad in ("0", "-1", "two"):
        r = CliRunner().invoke(cli, args + ["--jobs", bad])
        assert r.exit_code == 2 and "--jobs" in r.output
    r = CliRunner().invoke(cli, args + ["--jobs", "2", "--executor", "ray"])
    assert r.exit_code == 2 and "--jobs only applies" in r.output
