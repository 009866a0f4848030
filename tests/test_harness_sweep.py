"""Sweep planning and execution (local and Ray) with a stand-in for training."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from harness.arms import ARMS, BASELINE, METHOD
from harness.config import TrainConfig
from harness.runs import is_complete, prepare_run_dir, read_summary, scan_runs, write_summary
from harness.sweep import plan, run_local, run_ray


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

    from harness.config import TrainConfig
    from harness.runs import write_summary
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
