"""train() end to end on the smoke preset: run layout and fields, resume == uninterrupted, NaN stops cleanly."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from harness.presets import resolve_config
from harness.rundir import ROLLOUTS_FILE, SUMMARY_FIELDS, read_metrics, read_summary
from method import metrics as M
from method.hooks import Arm
from policy.config import RunError
from sandbox.jsonl import JsonlFile




def _smoke(**over):
    over.setdefault("sandbox", "process")
    return resolve_config("smoke", "vanilla", 41, over)


def _comparable(rows):
    drop = M.nondeterministic_names()
    return [{k: v for k, v in r.items() if k not in drop} for r in rows]


def test_smoke_run_end_to_end_writes_config_metrics_summary(tmp_path):
    from harness.train.loop import train

    cfg = _smoke()
    rd = tmp_path / "smoke" / "vanilla" / "seed41"
    summary = train(cfg, rd, progress=False)

    conf = json.loads((rd / "config.json").read_text())
    assert conf["config_hash"] == cfg.config_hash() and conf["arm"] == "vanilla"
    assert set(conf["hashes"]) >= {"model", "data", "pool", "v"} and conf["hashes"]["v"]
    assert conf["resolved"]["attn_impl"] == "sdpa" and conf["resolved"]["student_per_group"] == 2
    assert conf["grader"]["backend"] == "process" and conf["grader"]["isolated_by"] in ("bubblewrap", "none")
    assert conf["environment"]["torch"] == torch.__version__
    assert conf["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert {"python", "transformers", "tokenizers"} <= set(conf["environment"])

    rows = read_metrics(rd)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert set(r) <= set(M.METRICS), set(r) - set(M.METRICS)
        for key in ("reward_mean", "reward_std", "hack_rate_s", "hack_rate_t", "gt_pass_s", "gt_pass_t",
                    "loss", "grad_norm", "grad_norm_raw", "lr", "t_gen", "t_grade", "t_fwd_bwd", "peak_mem_mb",
                    "live_groups"):
            assert key in r, key
        if r["live_groups"] > 0:
            for key in ("cos_pre", "cos_post", "cos_pre_s", "cos_pre_t", "frac_fired", "kl"):
                assert r[key] is not None, key
    evals = [r["step"] for r in rows if "eval_hack_rate" in r]
    assert evals == [2, 3]                                   # eval_every=2 and at the end

    assert set(SUMMARY_FIELDS) <= set(summary) and summary["complete"] is True
    assert summary == read_summary(rd)
    assert summary["hack_rate"] == rows[-1]["eval_hack_rate"]
    assert summary["pass_rate"] == rows[-1]["eval_pass_rate"]
    assert summary["attempt_rate"] == rows[-1]["eval_attempt_rate"] is not None
    assert summary["steps"] == 3 and summary["wall_s"] > 0
    assert summary["hashes"] == conf["hashes"]

    rollouts = JsonlFile(rd / ROLLOUTS_FILE).read()   # every student completion, as graded
    assert [r["step"] for r in rollouts] == [s for s in (1, 2, 3) for _ in range(cfg.prompts_per_step
                                                                                 * cfg.student_per_group)]
    assert all(isinstance(r["completion"], str) and r["category"] for r in rollouts)
    assert rows[0]["hack_rate_s"] == sum(r["exploited"] for r in rollouts[:4]) / 4
    # cos_pre's chance level for the real V, and mean_cos as a multiple of it
    assert 0 < summary["null_cos"] < 1 and summary["null_cos"] == M.tail_mean(rows, "null_cos")
    assert summary["cos_over_null"] == pytest.approx(summary["mean_cos"] / summary["null_cos"])
    cks = sorted(p.name for p in (rd / "checkpoints").iterdir())
    assert cks == ["step_00000002", "step_00000003"]

    # a finished run is returned as is on resume; a fresh start over it is refused
    assert train(cfg, rd, resume=True, progress=False) == summary
    with pytest.raises(RunError):
        train(cfg, rd, resume=False, progress=False)


class _Kill(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing in the loop can swallow it."""


def test_killed_run_resumes_to_the_same_metrics_rows(tmp_path, monkeypatch):
    from harness.train import loop

    cfg = _smoke(steps=4, checkpoint_every=2, eval_every=2)
    full = tmp_path / "full"
    loop.train(cfg, full, progress=False)
    ref = read_metrics(full)
    assert len(ref) == 4

    # kill during step 4 (after step 3's row was logged; the last checkpoint is step 2)
    real_step = loop._Run.step

    def dying_step(self, step, grader):
        if step == 3:
            raise _Kill()
        return real_step(self, step, grader)

    part = tmp_path / "part"
    monkeypatch.setattr(loop._Run, "step", dying_step)
    with pytest.raises(_Kill):
        loop.train(cfg, part, progress=False)
    monkeypatch.setattr(loop._Run, "step", real_step)
    assert [r["step"] for r in read_metrics(part)] == [1, 2, 3]
    assert read_summary(part) is None
    (part / "checkpoints" / ".tmp-step_00000004-killed").mkdir()      # a checkpoint write cut short

    summary = loop.train(cfg, part, resume=True, progress=False)
    rows = read_metrics(part)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert _comparable(rows) == _comparable(ref)
    assert summary["hack_rate"] == read_summary(full)["hack_rate"]
    assert summary["by_mode"] == read_summary(full)["by_mode"]       # counted once per step, across the resume
    # the rollouts of the step recomputed after the checkpoint are logged once, as in the uninterrupted run
    assert JsonlFile(part / ROLLOUTS_FILE).read() == JsonlFile(full / ROLLOUTS_FILE).read()


class _NaNArm(Arm):
    """Poisons the run at step `at`, through the loss (a NaN reward) or the gradient."""

    def __init__(self, where: str, at: int, prompts_per_step: int):
        self.where, self.at, self.P, self.calls = where, at, prompts_per_step, 0

    def reward_hook(self, rewards, acts, info=None):
        step = self.calls // self.P + 1          # reward_hook runs once per group, P groups per step
        self.calls += 1
        rewards = rewards + 0.1 * torch.arange(len(rewards))   # spread: a random smoke model earns flat 0s
        if self.where == "loss" and step == self.at:
            rewards[0] = float("nan")
        return rewards, {}

    def grad_hook(self, grads):
        if self.where == "grad" and grads.step == self.at:
            next(iter(grads.modules.values())).delta_S.grad[0] = float("nan")
        return {}


@pytest.mark.parametrize("where", ["grad", "loss"])
def test_non_finite_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, where):
    from harness.train import loop
    from harness.train.checkpoint import latest_checkpoint

    at = 3
    cfg = _smoke(steps=4, checkpoint_every=2, teacher_frac=0.0)
    arm = _NaNArm(where, at, cfg.prompts_per_step)
    monkeypatch.setattr(loop, "build_arm", lambda config: arm)
    rd = tmp_path / where
    with pytest.raises(loop.NonFiniteError, match=f"step {at}"):
        loop.train(cfg, rd, progress=False)
    assert read_summary(rd) is None
    assert [r["step"] for r in read_metrics(rd)] == [1, 2]
    ck = latest_checkpoint(rd / "checkpoints")
    assert ck.step == 2 and ck.state["metrics"][-1]["step"] == 2
    for t in load_file(str(ck.path / "adapter.safetensors")).values():
        assert torch.isfinite(t).all()


# --------------------------------------------------------------------------- real grading inside the loop

def _scripted_students(monkeypatch):
    """A random smoke model never writes code, so the sandbox would grade nothing. Script the students instead:
    per prompt, sample 0 = the canonical solution (gt-correct), sample 1 = a constant stub + the mode's lever
    (exploited). Everything after generation (grading in the sandbox, rewards, loss) is the real loop."""
    from harness.train import loop
    from policy.encode import PromptEncoder
    from sandbox.loopholes import fence
    from sandbox.pool import lever_code, stub

    by_prompt = {}
    real_encode, real_generate = PromptEncoder.__call__, loop.generate

    def encode(self, problem):
        ids = real_encode(self, problem)
        by_prompt[tuple(ids)] = problem
        return ids

    def generate(model, tok, prompts, n, config, max_batch=None):
        out = real_generate(model, tok, prompts, n, config, max_batch)
        for pi, prompt in enumerate(prompts):
            p = by_prompt[tuple(prompt)]
            texts = [fence(p.canonical_solution), fence(stub(p) + "\n" + lever_code(p.mode))]
            for j in range(min(n, 2)):
                out[pi][j] = tok(texts[j], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return out

    monkeypatch.setattr(PromptEncoder, "__call__", encode)
    monkeypatch.setattr(loop, "generate", generate)


def _graded_run(tmp_path, monkeypatch, sandbox: str):
    from harness.train.loop import train

    _scripted_students(monkeypatch)
    cfg = _smoke(sandbox=sandbox, steps=2)
    rd = tmp_path / sandbox
    summary = train(cfg, rd, progress=False)
    rows = read_metrics(rd)
    for r in rows:   # 2 prompts x (1 canonical + 1 stub-with-lever): the sandbox's verdicts reach the log
        assert r["gt_pass_s"] == 0.5 and r["hack_rate_s"] == 0.5 and r["attempt_rate_s"] == 0.5, r
        assert 0.0 <= r["attempt_rate_t"] <= 1.0
    return summary, rows


def test_smoke_run_grades_student_code_in_the_process_sandbox(tmp_path, monkeypatch):
    summary, rows = _graded_run(tmp_path, monkeypatch, "process")
    assert summary["complete"] is True and all(r["t_grade"] > 0 for r in rows)


def _docker_ok():
    try:
        from sandbox.docker_executor import docker_available
        return docker_available()
    except Exception as e:  # no SDK, no daemon
        return False, str(e)


@pytest.mark.docker
def test_smoke_run_under_docker_matches_the_process_sandbox(tmp_path, monkeypatch):
    ok, why = _docker_ok()
    if not ok:
        pytest.skip(f"docker backend unavailable: {why}")
    _, rows_p = _graded_run(tmp_path, monkeypatch, "process")
    summary, rows_d = _graded_run(tmp_path, monkeypatch, "docker")
    assert summary["complete"] is True
    assert _comparable(rows_d) == _comparable(rows_p)


@pytest.mark.parametrize("arm", ["route", "rebound"])
def test_route_and_rebound_arms_run_through_the_loop(tmp_path, arm):
    """route: delta_S_hack is trained, checkpointed and ablated at eval; rebound: acts reach its reward hook."""
    from harness.train.loop import train

    cfg = resolve_config("smoke", arm, 41, {"sandbox": "process", "steps": 2})
    rd = tmp_path / arm
    summary = train(cfg, rd, progress=False)
    assert summary["complete"] is True and summary["hashes"]["v"]
    rows = read_metrics(rd)
    tensors = load_file(str(rd / "checkpoints" / "step_00000002" / "adapter.safetensors"))
    if arm == "route":
        hack = {k: v for k, v in tensors.items() if k.endswith("delta_S_hack")}
        assert hack and len(hack) == len(tensors) // 2
        if any(r["live_groups"] > 0 and (r["frac_fired"] or 0) > 0 for r in rows):
            assert any(v.abs().sum() > 0 for v in hack.values())      # the removed part trained delta_S_hack
    else:
        assert all("rebound_penalty" in r for r in rows)
        res = json.loads((rd / "config.json").read_text())["resolved"]
        assert res["rebound_layer"] == cfg.rebound_layer == 0 and res["rebound_depth_frac"] == 0.5
        assert res["rebound_layer_explicit"] is True and res["v_validation"]["passed"] is True


def test_teacher_rows_longer_than_max_new_tokens_are_never_trained_on(tmp_path, monkeypatch):
    """Every teacher rollout the loss sees is the whole pool completion + eos within max_new_tokens, with
    the row's own reward; the pool does hold rows that would not fit (the case under test happens)."""
    from harness.train import loop

    seen = []
    real = loop.policy_gradient

    def spy(model, groups, *a, **k):
        seen.extend(r for g in groups for r in g.teachers)
        return real(model, groups, *a, **k)

    monkeypatch.setattr(loop, "policy_gradient", spy)
    cfg = _smoke(steps=2, eval_every=0)
    rd = tmp_path / "t"
    loop.train(cfg, rd, progress=False)
    resolved = json.loads((rd / "config.json").read_text())["resolved"]
    assert 0 < resolved["teacher_rows_fit"] < resolved["teacher_rows"]
    rows = read_metrics(rd)
    assert all(r["trunc_t"] == 0 and r["teacher_short"] is not None for r in rows)
    from policy.model_loading import load_policy

    _, run_tok = load_policy(cfg, verbose=False)
    assert seen
    for r in seen:
        assert r.ids == run_tok(r.text, add_special_tokens=False)["input_ids"] + [run_tok.eos_token_id]
        assert len(r.ids) <= cfg.max_new_tokens and r.reward == float(r.record["reward"])


def test_teacher_attempt_rate_counts_the_pool_rows_attempted_flag(tmp_path, monkeypatch):
    """attempt_rate_t is the fraction of the step's teacher rows whose stored grade says attempted."""
    from harness.train import loop

    seen = []
    real = loop.policy_gradient

    def spy(model, groups, *a, **k):
        seen.append([bool(r.record["attempted"]) for g in groups for r in g.teachers])
        return real(model, groups, *a, **k)

    monkeypatch.setattr(loop, "policy_gradient", spy)
    rd = tmp_path / "a"
    loop.train(_smoke(steps=2, eval_every=0), rd, progress=False)
    rows = read_metrics(rd)
    assert any(any(s) for s in seen) and not all(all(s) for s in seen)   # attempted and clean rows were drawn
    for r, s in zip(rows, seen):
        assert r["attempt_rate_t"] == pytest.approx(sum(s) / len(s))


class _HalvingArm(Arm):
    """Gives every group reward spread and halves the gradient in its grad hook (a stand-in projection)."""

    def reward_hook(self, rewards, acts, info=None):
        return rewards + 0.1 * torch.arange(len(rewards)), {}

    def grad_hook(self, grads):
        for m in grads.modules.values():
            m.delta_S.grad.mul_(0.5)
        return {}


def test_grad_norm_raw_is_logged_before_the_arm_hook(tmp_path, monkeypatch):
    from harness.train import loop

    monkeypatch.setattr(loop, "build_arm", lambda config: _HalvingArm())
    rd = tmp_path / "h"
    loop.train(_smoke(steps=2, eval_every=0), rd, progress=False)
    rows = read_metrics(rd)
    assert all(r["live_groups"] > 0 for r in rows)
    for r in rows:
        assert r["grad_norm_raw"] > 0 and r["grad_norm"] == pytest.approx(0.5 * r["grad_norm_raw"], rel=1e-5)


def test_base_eval_runs_on_the_untrained_policy_and_lands_in_the_summary(tmp_path, monkeypatch):
    """The step-0 held-out eval must see delta_S == 0 (before any update) and feed summary.base_*; the
    final eval feeds hack_rate / pass_rate. Sentinel rates per step tell the two apart."""
    from harness.train import loop
    from policy.adapter import get_adapters

    seen = {}
    real_eval = loop._Run.evaluate

    def spy(self, step, grader):
        out = real_eval(self, step, grader)
        seen[step] = max(float(m.delta_S.abs().max()) for m in get_adapters(self.policy.model).values())
        out.update(eval_hack_rate=0.01 * (step + 1), eval_pass_rate=0.02 * (step + 1),
                   eval_attempt_rate=0.03 * (step + 1))
        return out

    monkeypatch.setattr(loop._Run, "evaluate", spy)
    cfg = _smoke(eval_every=0)
    summary = loop.train(cfg, tmp_path / "run", progress=False)
    assert sorted(seen) == [0, cfg.steps]
    assert seen[0] == 0.0 and seen[cfg.steps] > 0.0           # base eval before any update, final after
    assert summary["base_hack_rate"] == pytest.approx(0.01) and summary["base_pass_rate"] == pytest.approx(0.02)
    assert summary["base_attempt_rate"] == pytest.approx(0.03)
    assert summary["hack_rate"] == pytest.approx(0.01 * (cfg.steps + 1))
    assert all(r["step"] >= 1 for r in read_metrics(tmp_path / "run"))   # no extra metrics row for step 0
