"""`make gpu-check-cpu`: the GPU check's code on the shrunk Qwen3-4B architecture, end to end, on CPU, under the
conditions of an offline GPU window: no bubblewrap on PATH, the hub offline, no LeetCode data files."""
from __future__ import annotations

import json
import os

import pytest


@pytest.mark.slow
def test_gpu_check_cpu_offline_without_bwrap_or_data(tmp_path, capsys, monkeypatch):
    from harness.checks import gpu_check
    import sandbox.data as D

    monkeypatch.setenv("PATH", "/nonexistent")               # no bwrap (nor anything else) to find
    monkeypatch.delenv("RH_ALLOW_UNSANDBOXED", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(D, "SHARED_DATA_DIR", tmp_path / "no-shared")    # no LeetCode split anywhere
    monkeypatch.setattr(D, "DATA_DIR", tmp_path / "no-data")
    out = tmp_path / "check.json"
    assert gpu_check.main(["--cpu", "--steps", "2", "--max-new", "64", "--eval-new", "32", "--per-row-step",
                           "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["phases_done"] == ["environment", "model", "svd", "setup", "reconstruction", "step_1", "step_2",
                                "step_per_row", "eval_batch", "projection"]
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and r["environment"]["HF_HUB_OFFLINE"] == "1"
    assert r["environment"]["grader_isolation"].startswith("NONE: bubblewrap is not installed")
    assert "RH_ALLOW_UNSANDBOXED" not in os.environ          # the opt-out ends with the check
    assert r["environment"]["flash_attn"].startswith("not used: ")
    assert r["config"]["problem_set"] == "mini" and r["config"]["allow_weak_v"] is True
    assert r["setup"]["v_validation"]["allow_weak_v"] is True
    assert [s["step"] for s in r["steps"]] == [1, 2] and [s["teacher_split"] for s in r["steps"]] == [False, True]
    for s in r["steps"]:    # forced to full length: every student rollout is max_new tokens long
        assert s["rollout_tokens"] == r["config"]["prompts_per_step"] * r["config"]["G_s"] * 64
        assert s["t_generation_s"] > 0 and s["t_forward_backward_s"] > 0
    assert [s["shared_prefix"] for s in r["steps"]] == [True, True] and r["step_per_row"]["shared_prefix"] is False
    assert r["step_per_row"]["step"] == 3 and r["step_per_row"]["t_forward_backward_s"] > 0
    # which code ran: on CPU (sdpa) the packed loss layout and the lean sampling loop; per-row is the reference
    assert {(s["loss_layout"], s["sampler"]) for s in r["steps"]} == {("packed", "lean loop")}
    assert (r["step_per_row"]["loss_layout"], r["step_per_row"]["sampler"]) == ("per-row", "generate")
    svd = r["svd"]
    assert svd["matrices"] == 14 and len(svd["shapes"]) >= 3 and svd["projected_s_batched"] > 0
    for row in svd["shapes"]:     # fp32-stored factors reconstruct bf16 W at least as well as bf16-stored ones
        assert row["max_merge_err"]["fp32_factors"] <= row["max_merge_err"]["bf16_factors"]
    rec = r["reconstruction"]
    # full's residual adapter at delta_S = 0 is the original model exactly (the product form was 1 bf16 step off)
    assert rec["adapter_form"] == "residual" and rec["max_weight_err_merged"] == 0
    assert rec["kl_factored_mean"] == rec["kl_merged_mean"] == 0
    e = r["eval_batch"]
    assert e["rows"] == r["config"]["prompts_per_step"] * r["config"]["G_s"] and e["new_tokens"] == 32 and e["s_generate"] > 0
    p = r["projection"]
    assert p["evals_per_run"] == 9 and p["full_eval_generations"] == 1190 and p["teacher_split_steps"] == 40
    assert p["s_per_full_run"] > p["s_setup"] and p["main_matrix_runs"] >= 18
    assert "projected (worst case) full run" in capsys.readouterr().out
    import harness.train.loop as L
    import sandbox.artifacts as S
    from sandbox.paths import ARTIFACTS_DIR
    assert L.ARTIFACTS_DIR == S.ARTIFACTS_DIR == ARTIFACTS_DIR and L.generate.__module__ == "harness.train.rollout"
