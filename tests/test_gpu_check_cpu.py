"""`make gpu-check-cpu`: the GPU check's code on the shrunk Qwen3-4B architecture, end to end, on CPU."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_gpu_check_cpu_writes_every_measurement(tmp_path, capsys):
    from harness.checks import gpu_check

    out = tmp_path / "check.json"
    assert gpu_check.main(["--cpu", "--steps", "2", "--max-new", "64", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [s["step"] for s in r["steps"]] == [1, 2] and r["config"]["max_new_tokens"] == 64
    for s in r["steps"]:    # forced to full length: every student rollout is max_new tokens long
        assert s["rollout_tokens"] == r["config"]["prompts_per_step"] * r["config"]["G_s"] * 64
        assert s["live_groups"] > 0     # teacher rows fit in 64 tokens: rewards vary, the backward and projection run
        assert s["t_generation_s"] > 0 and s["t_forward_backward_s"] > 0 and s["t_projection_s"] > 0
    assert r["config"]["group_size"] == 8 and r["config"]["arm"] == "erase" and r["attn_impl"].startswith("sdpa")
    assert r["rollout_tokens_per_s"]["merged"] > 0 and r["rollout_tokens_per_s"]["unwrapped"] > 0
    assert r["merge_gap"] is not None and r["merge_gap"] >= 0
    assert r["dry_run_estimate_gib"] > 0 and r["peak_gib"] > 0 and r["peak_kind"].startswith("process peak RSS")
    assert "peak memory" in capsys.readouterr().out
    # the check patches module globals for its throwaway model; the caller's process gets them back
    import harness.models.substrate as S
    import harness.train.loop as L
    from harness.paths import ARTIFACTS_DIR
    assert L.ARTIFACTS_DIR == S.ARTIFACTS_DIR == ARTIFACTS_DIR and L.generate.__module__ == "harness.train.rollout"
