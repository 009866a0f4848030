"""ProjectionArm checkpoint state: a refreshed V survives state_dict -> safetensors -> load_state_dict,
and a resumed run with v_refresh_every > 0 matches the uninterrupted one."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from method.arm import ProjectionArm
from tests.test_method_projection import arm_ctx, backward_bundle, fake_v_source


def _refreshed_arm(tmp_path, kind, steps=2):
    ctx = arm_ctx(tmp_path / "a", v_refresh_every=2)
    arm = ProjectionArm(kind, "erase", v_source=fake_v_source([]))
    arm.setup(ctx)
    setup_V = {n: V.clone() for n, V in arm.V_arm.items()}
    for step in range(1, steps + 1):
        arm.grad_hook(backward_bundle(ctx, step))
    assert arm.v_refreshes == steps // 2
    assert any(not torch.equal(setup_V[n], arm.V_arm[n]) for n in setup_V)     # the refresh changed V
    return arm


def _through_safetensors(sd, path):
    save_file({k: v.detach().cpu().contiguous() for k, v in sd.items()}, str(path))   # as harness.train.checkpoint does
    return load_file(str(path))


@pytest.mark.parametrize("kind", ["real", "random"])
def test_refreshed_v_round_trips_through_state_dict(tmp_path, kind):
    arm = _refreshed_arm(tmp_path, kind)
    sd = arm.state_dict()
    assert any(k.startswith("V_real/") for k in sd)
    assert any(k.startswith("V_arm/") for k in sd) == (kind != "real")
    loaded = _through_safetensors(sd, tmp_path / "arm.safetensors")

    resumed = ProjectionArm(kind, "erase", v_source=fake_v_source([]))
    resumed.setup(arm_ctx(tmp_path / "b", v_refresh_every=2))   # a resume: setup gives the setup-time V again
    assert resumed.artifact_hashes() != arm.artifact_hashes() and resumed.v_refreshes == 0
    resumed.load_state_dict(loaded)
    assert resumed.v_refreshes == arm.v_refreshes == 1
    assert resumed.artifact_hashes() == arm.artifact_hashes()
    for mine, theirs in ((resumed.V_real, arm.V_real), (resumed.V_arm, arm.V_arm)):
        assert set(mine) == set(theirs)
        for n in mine:
            assert torch.equal(mine[n], theirs[n]) and mine[n].dtype == torch.float32
    assert (resumed.V_arm is resumed.V_real) == (kind == "real")
    # the next refresh counts on from the restored counter
    resumed.grad_hook(backward_bundle(resumed.ctx, 4))
    assert resumed.v_refreshes == 2


def test_frozen_v_has_no_state_and_mismatched_state_is_refused(tmp_path):
    frozen = ProjectionArm("real", "erase", v_source=fake_v_source([]))
    frozen.setup(arm_ctx(tmp_path / "f"))
    assert frozen.state_dict() == {}                          # setup re-derives a frozen V from the cache
    sd = _refreshed_arm(tmp_path, "random").state_dict()
    other = ProjectionArm("real", "erase", v_source=fake_v_source([]))
    other.setup(arm_ctx(tmp_path / "o", v_refresh_every=2))
    with pytest.raises(ValueError, match="saved by"):
        other.load_state_dict(sd)
    bad = ProjectionArm("random", "erase", v_source=fake_v_source([]))
    bad.setup(arm_ctx(tmp_path / "x", v_refresh_every=2))
    with pytest.raises(ValueError, match="shape"):
        bad.load_state_dict({**sd, **{k: v[:, :-1] for k, v in sd.items() if k.startswith("V_arm/")}})


class _Kill(BaseException):
    """Stands in for SIGKILL (not an Exception: nothing in the loop swallows it)."""


def test_resumed_run_keeps_the_refreshed_v(tmp_path, monkeypatch):
    """V refreshed at step 2, checkpoint at step 2, killed in step 3: the resumed step 3 must project with
    (and measure cos_* against) the step-2 V, not the setup V, exactly as the uninterrupted run did."""
    from harness.presets import resolve_config
    from harness.rundir import read_metrics
    from harness.train import loop
    from method import metrics as M

    old_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = resolve_config("smoke", "erase", 41, {"sandbox": "process", "steps": 3, "checkpoint_every": 2,
                                                    "eval_every": 0, "v_refresh_every": 2})
        loop.train(cfg, tmp_path / "full", progress=False)
        ref = read_metrics(tmp_path / "full")
        assert ref[1].get("v_refreshes") == 1 and ref[2]["live_groups"] > 0   # the case under test happened

        real_step = loop._Run.step

        def dying_step(self, step, grader):
            if step == 2:
                raise _Kill()
            return real_step(self, step, grader)

        monkeypatch.setattr(loop._Run, "step", dying_step)
        with pytest.raises(_Kill):
            loop.train(cfg, tmp_path / "part", progress=False)
        monkeypatch.setattr(loop._Run, "step", real_step)
        assert (tmp_path / "part" / "checkpoints" / "step_00000002" / "arm.safetensors").exists()
        loop.train(cfg, tmp_path / "part", resume=True, progress=False)
    finally:
        torch.set_num_threads(old_threads)
    drop = M.nondeterministic_names()
    rows = [{k: v for k, v in r.items() if k not in drop} for r in read_metrics(tmp_path / "part")]
    expected = [{k: v for k, v in r.items() if k not in drop} for r in ref]
    # cos_post is ~1e-8 after projection: its last bits depend on whether V came from memory or from the
    # safetensors cache, so compare to float tolerance (still far below any value the test is about).
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-7)
