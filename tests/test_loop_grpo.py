"""GRPO loop pieces without the sandbox: Dr.GRPO math, g_s + g_t == step gradient, KL reference via the
zeroed adapter, Rebound activations, generation determinism, checkpoints, model loading, dry run."""
from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
import torch

from harness.presets import resolve_config
from harness.train.rollout import Group, Rollout
from method.hooks import Arm
from policy.forward import make_batch, completion_logprobs, selective_log_softmax
from policy.grpo import dr_grpo_loss, group_advantages, is_flat, k3_kl, lr_at




# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def smoke_cfg():
    return resolve_config("smoke", "vanilla", 41)


@pytest.fixture(scope="module")
def smoke_path():
    from policy.substrate import ensure_builtin
    return ensure_builtin("smoke")


def _wrapped(cfg, tmp_path, route=False):
    from policy.adapter import wrap_model
    from policy.model_loading import load_policy

    model, tok = load_policy(cfg, verbose=False)
    adapters = wrap_model(model, cfg.target_modules, cache_dir=tmp_path / "svd", route=route)
    return model, tok, adapters


def _perturb(model, scale=0.05, seed=3):
    from policy.adapter import get_adapters

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in sorted(get_adapters(model).items()):
            m.delta_S.copy_(scale * torch.randn(m.rank, generator=g) * m.S.abs().mean())


def _groups(vocab: int, eos: int, seed: int = 0, n_groups: int = 2, G_s: int = 2, G_t: int = 2,
            rewards=None) -> list[Group]:
    """Random prompts and completions; student/teacher rewards with spread unless given."""
    rng = random.Random(seed)
    out = []
    for gi in range(n_groups):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(5, 9))]
        g = Group(SimpleNamespace(id=gi), prompt)
        for j in range(G_s + G_t):
            ids = [rng.randrange(3, vocab) for _ in range(rng.randint(2, 7))] + [eos]
            r = rewards[gi][j] if rewards is not None else float(rng.choice([0.0, 0.5, 3.5]) + 0.01 * j)
            g.rollouts.append(Rollout(text="", ids=ids, teacher=j >= G_s, reward=r, exploited=False,
                                      gt_correct=bool(j % 2)))
        out.append(g)
    return out


# --------------------------------------------------------------------------- pure math

def test_dr_grpo_advantages_and_flat_groups():
    r = torch.tensor([0.5, 3.5, 0.5, 0.5])
    a = group_advantages(r)
    assert torch.allclose(a, torch.tensor([-0.75, 2.25, -0.75, -0.75]))   # no std division
    assert a.sum().abs() < 1e-6
    assert is_flat(torch.tensor([3.5, 3.5, 3.5 + 5e-5]))
    assert not is_flat(torch.tensor([3.5, 0.5]))
    assert not is_flat(torch.tensor([float("nan"), 0.5]))   # NaN must reach the NaN check, not be skipped


def test_student_baseline_centres_on_the_student_rows_only():
    from policy.grpo import baseline_rows

    r = torch.tensor([0.0, 0.5, 3.5, 3.5])              # 2 students, 2 teacher rows
    teacher = torch.tensor([False, False, True, True])
    assert baseline_rows("group", teacher) is None
    a = group_advantages(r, baseline_rows("students", teacher))
    torch.testing.assert_close(a, torch.tensor([-0.25, 0.25, 3.25, 3.25]))
    torch.testing.assert_close(group_advantages(r), torch.tensor([-1.875, -1.375, 1.625, 1.625]))
    only_t = torch.ones(2, dtype=torch.bool)            # no student row: the group's mean
    torch.testing.assert_close(group_advantages(r[2:], baseline_rows("students", only_t)), torch.zeros(2))


def test_loss_value_and_gradient_are_advantage_weighted_logp():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.9], [0.1, 0.2, 0.3]])).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = torch.tensor([1.0, -2.0])
    loss = dr_grpo_loss(logp, None, adv, mask, beta=0.0, norm=10.0)
    # ratio == 1 -> value is -sum(A * mask) / norm; gradient is -A * mask / norm (no length normalisation)
    assert loss.item() == pytest.approx(-(1.0 * 2 - 2.0 * 3) / 10.0)
    loss.backward()
    assert torch.allclose(logp.grad, -adv[:, None] * mask / 10.0)


def test_k3_is_zero_at_reference_and_positive_elsewhere():
    lp = torch.randn(3, 5)
    assert torch.all(k3_kl(lp, lp) == 0)
    assert torch.all(k3_kl(lp, lp + torch.randn(3, 5)) > 0)


def test_selective_log_softmax_matches_log_softmax():
    logits = torch.randn(2, 4, 11)
    tg = torch.randint(0, 11, (2, 4))
    ref = torch.log_softmax(logits, -1).gather(-1, tg[..., None]).squeeze(-1)
    assert torch.allclose(selective_log_softmax(logits, tg), ref, atol=1e-6)


def test_lr_schedule_warmup_then_cosine():
    lrs = [lr_at(s, 20, 1.0, 0.1) for s in range(20)]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)   # 2 warmup steps
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))                     # then non-increasing
    assert lrs[-1] < 0.05
    assert lr_at(0, 10, 2.0, 0.0) == pytest.approx(2.0)


# --------------------------------------------------------------------------- gradients on the smoke model

@pytest.mark.parametrize("baseline", ["group", "students"])
def test_student_plus_teacher_gradient_equals_step_gradient(smoke_cfg, tmp_path, baseline):
    from harness.train.checkpoint import trainable_named
    from harness.train.loop import policy_gradient

    model, tok, adapters = _wrapped(smoke_cfg, tmp_path)
    _perturb(model)   # off the reference, so the KL term contributes too
    cfg = resolve_config("smoke", "vanilla", 41, {"kl_beta": 0.1, "advantage_baseline": baseline})
    groups = _groups(len(tok), tok.eos_token_id, n_groups=2, G_s=2, G_t=2)
    norm = 100.0
    sg = policy_gradient(model, groups, Arm(), cfg, tok.pad_token_id, norm, step=1)
    params = trainable_named(model)
    assert sg.live == 2
    for n, p in params.items():
        assert torch.equal(p.grad, sg.g_s[n] + sg.g_t[n])
    gs = torch.cat([sg.g_s[n] for n in params])
    gt = torch.cat([sg.g_t[n] for n in params])
    assert gs.norm() > 0 and gt.norm() > 0
    assert torch.cosine_similarity(gs, gt, dim=0) < 0.999   # two different halves

    # independent reference: one batch per group (both halves together), one backward of the summed loss;
    # the KL term on student rows only (k3 estimates the KL only on the policy's own samples)
    from policy.adapter import adapter_disabled

    model.zero_grad(set_to_none=True)
    total = 0.0
    for g in groups:
        b = make_batch(g.prompt_ids, [r.ids for r in g.rollouts], tok.pad_token_id, "cpu")
        with torch.no_grad(), adapter_disabled(model):
            ref, _ = completion_logprobs(model, b)
        logp, _ = completion_logprobs(model, b)
        student = torch.tensor([0.0 if r.teacher else 1.0 for r in g.rollouts])[:, None]
        r = g.rewards()
        adv = r - (r[student[:, 0] > 0].mean() if baseline == "students" else r.mean())
        total = total + dr_grpo_loss(logp, None, adv, b.completion_mask, 0.0, norm)
        total = total + 0.1 * (k3_kl(logp, ref) * b.completion_mask * student).sum() / norm
    total.backward()
    for n, p in params.items():
        assert torch.allclose(p.grad, sg.g_s[n] + sg.g_t[n], atol=1e-6, rtol=1e-4), n
    assert sg.loss == pytest.approx(total.item(), rel=1e-4, abs=1e-7)


def test_teacher_half_gradient_has_no_kl_term(smoke_cfg, tmp_path):
    """kl_beta changes g_s (student tokens are policy samples) and leaves g_t untouched (teacher tokens are not)."""
    from harness.train.loop import policy_gradient

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    _perturb(model, scale=0.2)      # off the reference: the KL gradient is not zero
    groups = _groups(len(tok), tok.eos_token_id, seed=6)
    out = {}
    for beta in (0.0, 0.5):
        cfg = resolve_config("smoke", "vanilla", 41, {"kl_beta": beta})
        out[beta] = policy_gradient(model, groups, Arm(), cfg, tok.pad_token_id, 10.0, step=1)
    g0, g1 = out[0.0], out[0.5]
    assert g1.live == 2 and g1.kl_tokens > 0 and g1.kl_sum > 0
    for n in g0.g_t:
        assert torch.equal(g0.g_t[n], g1.g_t[n]), n
    gs0 = torch.cat([g0.g_s[n] for n in g0.g_s])
    gs1 = torch.cat([g1.g_s[n] for n in g1.g_s])
    assert (gs1 - gs0).norm() > 1e-3 * gs0.norm()


class _SealedRollout(Rollout):
    """A rollout whose grade fields other than `reward` raise when read: the gradient may depend on them only
    through the reward the grader already folded them into."""
    def __getattribute__(self, name):
        if name in ("gt_correct", "exploited", "record", "attempted", "text"):
            raise AssertionError(f"the gradient path read Rollout.{name}")
        return object.__getattribute__(self, name)


def _sealed(groups):
    for g in groups:
        g.rollouts = [_SealedRollout(**{f: object.__getattribute__(r, f) for f in Rollout.__dataclass_fields__})
                      for r in g.rollouts]
    return groups


def test_the_oracle_shapes_the_reward_but_reaches_the_gradient_only_through_it(smoke_cfg, tmp_path):
    from harness.train.checkpoint import trainable_named
    from harness.train.loop import policy_gradient
    from sandbox.grader import GradeRecord

    # what holds: the benchmark's reward pays gt_correct (3.0) even when the foolable grade failed ...
    assert GradeRecord.make(True, False, True, False, "m").reward == 3.5
    assert GradeRecord.make(True, False, False, False, "m").reward == 0.5

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    flat = _sealed(_groups(len(tok), tok.eos_token_id, rewards=[[0.5] * 4, [3.5] * 4]))
    sg = policy_gradient(model, flat, Arm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    assert sg.live == 0 and sg.kl_tokens == 0
    assert all(p.grad is None for p in trainable_named(model).values())

    # ... and nothing on the gradient path (loss, advantages, the arm's reward hook) reads it any other way:
    # reading gt_correct / exploited / record / attempted raises, and the gradient is that of plain rollouts.
    rewards = [[0.5, 3.5, 0.5, 3.5], [3.5, 0.5, 0.5, 0.5]]
    a = _groups(len(tok), tok.eos_token_id, seed=5, rewards=rewards)
    b = _sealed(_groups(len(tok), tok.eos_token_id, seed=5, rewards=rewards))
    ga = policy_gradient(model, a, _ActsArm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    gb = policy_gradient(model, b, _ActsArm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    assert ga.live == 2
    for n in ga.g_s:
        assert torch.equal(ga.g_s[n], gb.g_s[n]) and torch.equal(ga.g_t[n], gb.g_t[n])


def test_kl_reference_is_the_zeroed_adapter(smoke_cfg, tmp_path):
    from harness.train.loop import policy_gradient

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    groups = _groups(len(tok), tok.eos_token_id, seed=2)
    sg = policy_gradient(model, groups, Arm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    assert sg.kl_tokens > 0 and sg.kl_sum == pytest.approx(0.0, abs=1e-6)   # delta_S = 0: policy == reference
    _perturb(model, scale=0.2)
    sg = policy_gradient(model, groups, Arm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    assert sg.kl_sum / sg.kl_tokens > 1e-6


class _ActsArm(Arm):
    """Records the activations the loop hands to reward_hook and shifts one reward (a Rebound-like arm)."""
    activation_layer = 0

    def __init__(self):
        self.seen = []

    def reward_hook(self, rewards, acts, info=None):
        self.seen.append((rewards.clone(), acts))
        return rewards - 0.1 * torch.arange(len(rewards)), {"penalty": 0.1}


def test_reward_hook_gets_mean_completion_residual_at_the_arm_layer(smoke_cfg, tmp_path):
    from harness.train.loop import policy_gradient

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    groups = _groups(len(tok), tok.eos_token_id, seed=4, rewards=[[0.5] * 4, [3.5] * 4])   # flat before the hook
    arm = _ActsArm()
    sg = policy_gradient(model, groups, arm, smoke_cfg, tok.pad_token_id, 10.0, step=1)
    assert sg.live == 2                    # the hook's reward changes gave the flat groups spread
    assert sg.hook_stats == [{"penalty": 0.1}] * 2
    d = model.config.hidden_size
    for g, (rw, acts) in zip(groups, arm.seen):
        assert acts.shape == (4, d)
        # expected: hidden_states[layer + 1] averaged over each rollout's own completion tokens
        for i, r in enumerate(g.rollouts):
            ids = torch.tensor([g.prompt_ids + r.ids])
            with torch.no_grad():
                hs = model(ids, output_hidden_states=True).hidden_states[1][0, len(g.prompt_ids):]
            assert torch.allclose(acts[i], hs.mean(0), atol=1e-5)


# --------------------------------------------------------------------------- generation, loading

def test_generation_is_reproducible_and_padding_free(smoke_cfg, tmp_path):
    from harness.train.rollout import generate
    from policy.adapter import merged

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    p1, p2 = [5, 6, 7, 8, 9, 10, 11], [12, 13, 14]
    with merged(model):
        torch.manual_seed(7)
        a = generate(model, tok, [p1, p2], 2, smoke_cfg)
        torch.manual_seed(7)
        b = generate(model, tok, [p1, p2], 2, smoke_cfg)
        greedy = resolve_config("smoke", "vanilla", 41, {"top_k": 1})
        batched = generate(model, tok, [p1, p2], 1, greedy)
        alone = generate(model, tok, [p2], 1, greedy)
    assert a == b and len(a) == 2 and all(len(x) == 2 for x in a)
    assert all(0 < len(s) <= smoke_cfg.max_new_tokens for x in a for s in x)
    assert batched[1][0] == alone[0][0]   # left padding does not change what a prompt generates


def test_sampling_ignores_the_checkpoints_own_generation_defaults(smoke_cfg, tmp_path):
    """Hub checkpoints ship generation defaults (Qwen3-4B: temperature 0.6, top_k 20, top_p 0.95); the config wins."""
    from harness.train.rollout import generate
    from policy.adapter import merged

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    cfg = resolve_config("smoke", "vanilla", 41, {"top_k": 0, "min_p": 0.0, "max_new_tokens": 12})
    prompts = [[5, 6, 7, 8], [9, 10, 11]]

    def sample():
        torch.manual_seed(3)
        with merged(model):
            return generate(model, tok, prompts, 3, cfg)

    plain = sample()
    gc = model.generation_config
    gc.temperature, gc.top_k, gc.top_p, gc.min_p, gc.repetition_penalty = 0.05, 1, 0.5, 0.9, 3.0
    assert sample() == plain


def test_load_policy_from_a_local_save_pretrained_dir(smoke_path, tmp_path):
    """The code path `full` uses with a hub id: from_pretrained on a directory."""
    from transformers import AutoModelForCausalLM

    from policy.model_loading import load_policy

    cfg = resolve_config("smoke", "vanilla", 41, {"model": str(smoke_path), "grad_checkpointing": True})
    model, tok = load_policy(cfg, verbose=False)
    ref = AutoModelForCausalLM.from_pretrained(str(smoke_path))
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, ref(ids).logits)
    assert model.load_info.attn_impl == "sdpa" and model.load_info.dtype == "float32"
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)


def test_dry_run_estimates_full_preset_memory_offline():
    from policy.model_loading import dry_run, estimate_memory

    full = resolve_config("full", "vanilla", 41)
    out = dry_run(full)
    json.dumps(out)
    mem = out["memory_gib"]
    assert 3.5 < mem["dense_params_billion"] < 4.5                 # Qwen3-4B
    assert 15 < mem["total_gib"] < 80                              # fits the H100 it is meant for
    bigger = estimate_memory(resolve_config("full", "vanilla", 41, {"max_new_tokens": 2048}))
    assert bigger["kv_cache_generation"] > mem["kv_cache_generation"]
    assert bigger["logits_completion_only"] > mem["logits_completion_only"]


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_roundtrip_keeps_last_two_and_ignores_partial_writes(smoke_cfg, tmp_path):
    from harness.train.checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint,
                                          trainable_named)

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    params = trainable_named(model)
    opt = torch.optim.AdamW(list(params.values()), lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
    for p in params.values():
        p.grad = torch.randn_like(p)
    opt.step()
    root = tmp_path / "ck"
    for s in (1, 2, 3):
        torch.manual_seed(100 + s)
        random.seed(100 + s)
        save_checkpoint(root, s, model, opt, {"metrics": [{"step": s}], "config_hash": "h"})
    expect_torch, expect_py = torch.rand(3), random.random()      # the draws right after saving step 3
    assert [c.step for c in list_checkpoints(root)] == [2, 3]
    (root / ".tmp-step_00000004-xyz").mkdir()                     # a write killed halfway
    (root / "step_00000009").mkdir()                              # no state.json: not complete
    ck = latest_checkpoint(root)
    assert ck.step == 3 and ck.state["metrics"] == [{"step": 3}]

    saved = {n: p.detach().clone() for n, p in params.items()}
    first = next(iter(params.values()))
    saved_opt = {k: v.clone() for k, v in opt.state[first].items()}
    with torch.no_grad():                                         # clobber everything, then restore
        for p in params.values():
            p.add_(1.0)
    for p in params.values():
        p.grad = torch.randn_like(p)
    opt.step()
    torch.manual_seed(999)
    random.seed(999)
    state = load_checkpoint(ck, model, opt)
    assert state["step"] == 3
    for n, p in params.items():
        assert torch.equal(p, saved[n])
    for k, v in opt.state[first].items():
        assert torch.equal(v, saved_opt[k])
    assert opt.param_groups[0]["betas"][1] == pytest.approx(0.99)
    assert torch.equal(torch.rand(3), expect_torch) and random.random() == expect_py


# --------------------------------------------------------------------------- held-out evaluation

class _RecordingGrader:
    """Grades by a fixed rule and remembers what it saw."""

    def __init__(self):
        self.seen = []

    def grade_many(self, jobs):
        self.seen += [text for _, text, _ in jobs]
        return [SimpleNamespace(exploited=i % 2 == 0, gt_correct=i % 3 == 0, attempted=i % 4 < 3,
                                defines_check=i % 5 < 4, category="x")   # a GradeRecord's fields
                for i in range(len(jobs))]


def test_evaluate_is_seeded_and_route_eval_ablates_delta_s_hack(smoke_cfg, tmp_path):
    from harness.train.evaluate import evaluate
    from policy.adapter import get_adapters
    from policy.encode import PromptEncoder

    model, tok, _ = _wrapped(smoke_cfg, tmp_path, route=True)
    _perturb(model)
    probs = [SimpleNamespace(id=i, mode="run_tests") for i in range(3)]
    enc = PromptEncoder(tok, smoke_cfg)
    enc._cache = {p.id: [5 + p.id, 6, 7, 8] for p in probs}      # skip the chat template: fixed prompt ids
    cfg = resolve_config("smoke", "route", 41, {"eval_samples": 2})

    def run(ablate, seed=11):
        g = _RecordingGrader()
        out = evaluate(model, tok, probs, g, cfg, enc, seed=seed, ablate_hack=ablate)
        return out, g.seen

    base_out, base_seen = run(ablate=False)
    assert base_out["eval_n"] == 6 and base_out["eval_hack_rate"] == pytest.approx(3 / 6)
    assert base_out["eval_pass_rate"] == pytest.approx(2 / 6)
    assert base_out["eval_attempt_rate"] == pytest.approx(5 / 6)
    # each held-out generation's record keeps the grader's flags, channel use (defines_check) included
    assert [r["defines_check"] for r in base_out["_records"]] == [i % 5 < 4 for i in range(6)]
    assert [r["attempted"] for r in base_out["_records"]] == [i % 4 < 3 for i in range(6)]
    assert run(ablate=False)[1] == base_seen                       # same seed, same generations
    with torch.no_grad():
        for m in get_adapters(model).values():
            m.delta_S_hack.copy_(torch.randn_like(m.delta_S_hack) * m.S.abs().mean())
    _, ablated = run(ablate=True)
    assert ablated == base_seen                                    # delta_S_hack is zeroed for evaluation
    _, with_hack = run(ablate=False)
    assert with_hack != base_seen                                  # ... and it does change generations when on


def test_gradient_checkpointing_gives_the_same_step_gradient(tmp_path):
    """The full preset trains with checkpointing (and Rebound's capture forward first): same g_s, g_t, acts."""
    from harness.train.loop import policy_gradient

    out = []
    for ckpt in (False, True):
        cfg = resolve_config("smoke", "rebound", 41, {"grad_checkpointing": ckpt, "kl_beta": 0.1})
        model, tok, _ = _wrapped(cfg, tmp_path)
        _perturb(model)
        arm = _ActsArm()
        groups = _groups(len(tok), tok.eos_token_id, seed=9)
        sg = policy_gradient(model, groups, arm, cfg, tok.pad_token_id, 10.0, step=1)
        out.append((sg, [a for _, a in arm.seen]))
    (a, acts_a), (b, acts_b) = out
    for n in a.g_s:
        assert torch.allclose(a.g_s[n], b.g_s[n], atol=1e-6, rtol=1e-5)
        assert torch.allclose(a.g_t[n], b.g_t[n], atol=1e-6, rtol=1e-5)
    for x, y in zip(acts_a, acts_b):
        assert torch.allclose(x, y, atol=1e-6)


def test_merge_gap_is_zero_in_fp32_and_sees_a_stale_merged_weight(smoke_cfg, tmp_path, monkeypatch):
    """merge_gap = mean |logp merged - logp factored| on one held-out group: ~0 on CPU fp32 (logged at every
    evaluation), and it does see generation running on weights that differ from the trained ones."""
    from harness.train.evaluate import evaluate, merge_gap
    from policy.adapter import SVDLinear, merged
    from policy.encode import PromptEncoder

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    _perturb(model, scale=0.2)
    probs = [SimpleNamespace(id=i, mode="run_tests") for i in range(2)]
    enc = PromptEncoder(tok, smoke_cfg)
    enc._cache = {p.id: [5 + p.id, 6, 7, 8] for p in probs}
    cfg = resolve_config("smoke", "vanilla", 41, {"eval_samples": 3})
    out = evaluate(model, tok, probs, _RecordingGrader(), cfg, enc, seed=11)
    assert out["merge_gap"] is not None and out["merge_gap"] < 1e-4

    completions = [[9, 10, 11, 12, tok.eos_token_id], [13, 14, 15]]
    with merged(model):
        pass                                          # dense weights now hold the current delta
    _perturb(model, scale=0.2, seed=8)                # train on ...
    monkeypatch.setattr(SVDLinear, "sync_merged", lambda self: False)   # ... but generate on the stale merge
    assert merge_gap(model, [5, 6, 7, 8], completions, tok.pad_token_id) > 1e-3


# --------------------------------------------------------------------------- teacher rows

class _CharTok:
    """One token per character."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(ch) for ch in text]}


def test_teacher_sampler_draws_only_rows_that_fit_and_is_seed_deterministic():
    from harness.train.rollout import TeacherSampler

    def row(pid, text, reward):
        return {"problem_id": pid, "completion": text, "reward": reward, "exploited": False, "gt_correct": False}

    pool = SimpleNamespace(by_problem={
        1: [row(1, "a" * 5, 0.5), row(1, "b" * 9, 3.5), row(1, "c" * 30, 3.5), row(1, "d" * 7, 0.0)],
        2: [row(2, "e" * 4, 3.5), row(2, "f" * 40, 0.5)],          # one fits: drawn with replacement
        3: [row(3, "g" * 50, 3.5)],                                 # none fits: no teacher rollouts
    })
    probs = {i: SimpleNamespace(id=i) for i in (1, 2, 3)}
    ts = TeacherSampler(pool, list(probs.values()), _CharTok(), eos_id=0, max_new_tokens=10)
    assert ts.stats() == {"teacher_rows": 7, "teacher_rows_fit": 4, "teacher_problems_no_fit": 1}
    for seed in range(20):
        out = ts(probs[1], 3, random.Random(seed))
        assert len(out) == 3 and len({r.text for r in out}) == 3          # without replacement while enough fit
        for r in out:
            assert r.text[0] in "abd" and r.ids == [ord(ch) for ch in r.text] + [0] and len(r.ids) <= 10
            assert r.teacher and not r.truncated
    two = ts(probs[2], 2, random.Random(0))
    assert [r.text for r in two] == ["eeee", "eeee"] and ts.short(probs[2], 2) and not ts.short(probs[1], 2)
    assert ts(probs[3], 2, random.Random(0)) == [] and ts.short(probs[3], 2)
    draw = lambda: [r.text for r in ts(probs[1], 2, random.Random(7))]   # noqa: E731
    assert draw() == draw()


def test_teacher_part_gradients_are_measured_apart_from_training(smoke_cfg, tmp_path):
    """The correct / hacking teacher-row gradients (a diagnostic) sum to g_t and leave the training gradient
    bit-identical: the label split never reaches .grad."""
    from harness.train.checkpoint import trainable_named
    from harness.train.loop import policy_gradient

    model, tok, _ = _wrapped(smoke_cfg, tmp_path)
    groups = _groups(len(tok), tok.eos_token_id, seed=9, G_s=2, G_t=3)
    for g in groups:
        for r in g.teachers:
            r.exploited = not r.gt_correct          # every teacher row is either correct or a hack
    plain = policy_gradient(model, groups, Arm(), smoke_cfg, tok.pad_token_id, 10.0, step=1)
    grads = {n: p.grad.clone() for n, p in trainable_named(model).items()}
    split = policy_gradient(model, groups, Arm(), smoke_cfg, tok.pad_token_id, 10.0, step=1,
                            measure_teacher_parts=True)
    assert plain.g_t_parts == {} and set(split.g_t_parts) == {"t_correct", "t_hack"}
    for n, p in trainable_named(model).items():
        assert torch.equal(p.grad, grads[n]) and torch.equal(split.g_t[n], plain.g_t[n])
        total = split.g_t_parts["t_correct"][n] + split.g_t_parts["t_hack"][n]
        torch.testing.assert_close(total, split.g_t[n], atol=1e-6, rtol=1e-4)
    assert any(v.abs().sum() > 0 for v in split.g_t_parts["t_hack"].values())
