"""Shared-prefix forward (policy.prefix) == the per-row forward: per-token log-probs within 1e-5 (fp32),
delta_S gradients within 1e-4 relative, for the policy-gradient term, the KL term, Rebound's activations and a whole
policy_gradient step; on smoke, a mini-sized Qwen3 and the shrunk Qwen3-4B (`full`'s path, gradient checkpointing on).

Rows of one half differ in length (right padding inside the half) and the two halves differ in width, so a wrong
position offset, unshared prompt keys or a prefix cut off from the gradient all show (each was checked to fail).
Every equivalence test runs on both shared layouts (the `layout` fixture): packed (sdpa/eager) and padded (what
flash-attention gets). Generation: with a fixed seed the shared path (the lean loop of harness.train.sampling, or
model.generate on a shared prefill) draws the per-row path's tokens and leaves torch's RNG in the same state, for
each sampling knob the presets use, with min_new_tokens and with rows ending early. 22 injected faults (mask,
positions, cache rows, processor order, early stop, ...) each made this file fail.
"""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from harness.presets import resolve_config
from harness.train.rollout import Group, Rollout
from method.hooks import Arm
from policy.forward import completion_logprobs, length_chunks, make_batch
from policy.grpo import dr_grpo_loss

LOGP_ATOL = 1e-5
GRAD_RTOL = 1e-4


def _load(kind: str, tmp_path, grad_checkpointing: bool = False):
    """(model, tokenizer, adapters): fp32, wrapped, delta_S perturbed off zero (so the KL term has a gradient)."""
    from policy.adapter import wrap_model
    from policy.model_loading import load_policy

    over = {"dtype": "float32", "grad_checkpointing": grad_checkpointing}
    if kind == "smoke":
        cfg = resolve_config("smoke", "vanilla", 41, over)
    elif kind == "mini_dims":        # mini's architecture at random init: equivalence does not need its SFT
        from transformers import Qwen3ForCausalLM

        from policy.qwen3_local import qwen3_tokenizer
        from policy.substrate import MINI_DIMS, MINI_VOCAB, _save_model, qwen3_config

        tok = qwen3_tokenizer(vocab_size=MINI_VOCAB)
        torch.manual_seed(1)
        _save_model(Qwen3ForCausalLM(qwen3_config(tok, **MINI_DIMS)), tok, tmp_path / "mini_dims")
        cfg = resolve_config("smoke", "vanilla", 41, {**over, "model": str(tmp_path / "mini_dims")})
    else:                            # the full preset's architecture, shrunk (tests/test_full_path_cpu.py)
        from policy.qwen3_local import save_local_qwen3

        path = save_local_qwen3(tmp_path / "qwen3_shrunk", shrink=True)
        cfg = resolve_config("full", "vanilla", 41, {**over, "model": str(path), "attn_impl": "sdpa"})
    model, tok = load_policy(cfg, device=torch.device("cpu"), verbose=False)
    adapters = wrap_model(model, cfg.target_modules, cache_dir=tmp_path / "svd")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for _, m in sorted(adapters.items()):
            m.delta_S.copy_(0.1 * torch.randn(m.rank, generator=g) * m.S.abs().mean())
    return model, tok, adapters, cfg


def _grad(model, adapters, loss_fn) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    loss_fn().backward()
    g = torch.cat([m.delta_S.grad.flatten() for _, m in sorted(adapters.items())])
    model.zero_grad(set_to_none=True)
    return g


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _halves(vocab: int, seed: int = 0):
    """One prompt; a student half (4 rows, lengths 3..11) and a teacher half (3 rows, lengths 1..6)."""
    rng = random.Random(seed)
    prompt = [rng.randrange(3, vocab) for _ in range(23)]
    students = [[rng.randrange(3, vocab) for _ in range(n)] for n in (11, 3, 7, 5)]
    teachers = [[rng.randrange(3, vocab) for _ in range(n)] for n in (6, 1, 4)]
    return prompt, students, teachers


KINDS = ["smoke", "mini_dims"]


@pytest.fixture(params=["packed", "padded"])
def layout(request, monkeypatch):
    """packed: a half's suffixes in one unpadded block-causal sequence (sdpa/eager); padded: a right-padded batch
    over the expanded prefix, in length chunks (what flash-attention gets). Both must match the per-row path."""
    from policy import prefix

    if request.param == "padded":
        monkeypatch.setattr(prefix, "can_pack", lambda model: False)
    return request.param


def _check_layout(model, layout):
    from policy import prefix

    assert prefix.can_pack(model) == (layout == "packed")


@pytest.mark.parametrize("kind", KINDS)
def test_logprobs_and_policy_gradient_match_per_row(kind, tmp_path, layout):
    model, tok, adapters, _ = _load(kind, tmp_path)
    _check_layout(model, layout)
    prompt, students, teachers = _halves(len(tok))
    even = [r[:1] * n for r, n in zip(students, (8, 9, 8, 9))]       # near-equal lengths: one chunk
    assert [len(length_chunks([len(r) for r in rows])) for rows in (students, teachers, even)] == [2, 2, 1]
    model.train()
    for rows in (students, teachers, even):     # split into two length chunks, and not
        b = make_batch(prompt, rows, tok.pad_token_id, "cpu")
        adv = torch.linspace(-1.0, 1.5, len(rows))
        out = {}
        for shared in (False, True):
            box = {}

            def loss(shared=shared, box=box):
                box["logp"], _ = completion_logprobs(model, b, shared_prefix=shared)
                return dr_grpo_loss(box["logp"], None, adv, b.completion_mask, 0.0, 10.0)
            out[shared] = (_grad(model, adapters, loss), box["logp"].detach())
        m = b.completion_mask.bool()
        assert (out[True][1] - out[False][1])[m].abs().max() <= LOGP_ATOL
        assert out[False][0].norm() > 0
        assert _rel(out[True][0], out[False][0]) <= GRAD_RTOL


@pytest.mark.parametrize("kind", KINDS)
def test_kl_term_and_reference_match_per_row(kind, tmp_path, layout):
    """The reference forward (adapter off, no grad) and the gradient of the k3 term alone (zero advantages)."""
    from policy.adapter import adapter_disabled

    model, tok, adapters, _ = _load(kind, tmp_path)
    _check_layout(model, layout)
    prompt, students, _ = _halves(len(tok), seed=1)
    b = make_batch(prompt, students, tok.pad_token_id, "cpu")
    m = b.completion_mask.bool()
    refs, grads = {}, {}
    for shared in (False, True):
        model.eval()
        with torch.no_grad(), adapter_disabled(model):
            refs[shared], _ = completion_logprobs(model, b, shared_prefix=shared)
        model.train()

        def loss(shared=shared):
            logp, _ = completion_logprobs(model, b, shared_prefix=shared)
            return dr_grpo_loss(logp, refs[shared], torch.zeros(len(students)), b.completion_mask, 1.0, 10.0)
        grads[shared] = _grad(model, adapters, loss)
    assert (refs[True] - refs[False])[m].abs().max() <= LOGP_ATOL
    assert grads[False].norm() > 0
    assert _rel(grads[True], grads[False]) <= GRAD_RTOL


def test_rebound_activations_match_per_row(tmp_path, layout):
    model, tok, _, _ = _load("smoke", tmp_path)
    _check_layout(model, layout)
    prompt, students, _ = _halves(len(tok), seed=2)
    b = make_batch(prompt, students, tok.pad_token_id, "cpu")
    with torch.no_grad():
        acts = {s: completion_logprobs(model, b, capture_layer=0, shared_prefix=s)[1] for s in (False, True)}
    assert acts[True].shape == (len(students), model.config.hidden_size)
    assert torch.allclose(acts[True], acts[False], atol=1e-5)


# --------------------------------------------------------------------------- the loop's step, both paths

class _ActsArm(Arm):
    activation_layer = 1

    def __init__(self):
        self.seen = []

    def reward_hook(self, rewards, acts, info):
        self.seen.append(acts)
        return rewards, {}


def _groups(vocab: int, eos: int, seed: int = 0) -> list[Group]:
    rng = random.Random(seed)
    out = []
    for gi in range(2):
        g = Group(SimpleNamespace(id=gi), [rng.randrange(3, vocab) for _ in range(rng.randint(9, 17))])
        for j in range(5):
            ids = [rng.randrange(3, vocab) for _ in range(rng.randint(1, 9))] + [eos]
            g.rollouts.append(Rollout(text="", ids=ids, teacher=j >= 3, reward=float(rng.choice([0.0, 0.5, 3.5])
                                      + 0.01 * j), exploited=bool(j % 2), gt_correct=not j % 2))
        out.append(g)
    return out


def _step_both_paths(kind: str, tmp_path, grad_checkpointing: bool):
    from harness.train.loop import policy_gradient

    model, tok, _, cfg = _load(kind, tmp_path, grad_checkpointing)
    assert model.config._attn_implementation == "sdpa"      # packed unless the layout fixture says padded
    groups = _groups(len(tok), tok.eos_token_id)
    out = {}
    for shared in (False, True):
        c = resolve_config(cfg.preset, "vanilla", 41, {**{k: getattr(cfg, k) for k in ("model", "dtype",
                                                       "grad_checkpointing")}, "kl_beta": 0.5, "shared_prefix": shared})
        arm = _ActsArm()
        out[shared] = (policy_gradient(model, groups, arm, c, tok.pad_token_id, 10.0, step=1,
                                       measure_teacher_parts=True), arm.seen)
    return out


def _assert_steps_match(out):
    (a, acts_a), (b, acts_b) = out[False], out[True]
    assert a.live == b.live == 2
    for name in a.g_s:
        assert _rel(b.g_s[name], a.g_s[name]) <= GRAD_RTOL, name
        assert _rel(b.g_t[name], a.g_t[name]) <= GRAD_RTOL, name
        for part in a.g_t_parts:
            assert _rel(b.g_t_parts[part][name], a.g_t_parts[part][name]) <= GRAD_RTOL, (part, name)
    assert b.kl_sum == pytest.approx(a.kl_sum, rel=1e-4) and a.kl_sum > 0
    assert b.loss == pytest.approx(a.loss, rel=1e-4)
    for x, y in zip(acts_a, acts_b):
        assert torch.allclose(x, y, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_policy_gradient_step_matches_per_row(kind, tmp_path, layout):
    """g_s, g_t (and the teacher-part diagnostic), the logged KL and loss, and the arm's activations."""
    _assert_steps_match(_step_both_paths(kind, tmp_path, grad_checkpointing=False))


def test_full_architecture_with_gradient_checkpointing_matches_per_row(tmp_path, layout):
    """`full`'s path: Qwen3-4B's architecture (GQA, q/k norms, tied embeddings) shrunk, loaded by path, with
    gradient checkpointing on, so checkpointed blocks recompute while holding the shared prefix's keys/values."""
    out = _step_both_paths("full", tmp_path, grad_checkpointing=True)
    _assert_steps_match(out)


def test_shared_prefix_is_the_default():
    assert resolve_config("mini", "vanilla", 41).shared_prefix and resolve_config("full", "vanilla", 41).shared_prefix


# --------------------------------------------------------------------------- extraction and Rebound's capture

@pytest.fixture(scope="module")
def pair_ctx(tmp_path_factory):
    """smoke, wrapped and perturbed (extraction differentiates at delta_S = 0 and, on a refresh, where it stands),
    with the first real hack pairs (pos and neg of different lengths)."""
    from method import pair_sets as PS
    from method import pairs as P
    from method.extract import PairEncoder

    model, tok, adapters, cfg = _load("smoke", tmp_path_factory.mktemp("pairs"))
    pairs = PS.load_pairs(P.HACK_SET, cfg)[0][:3]
    enc = PairEncoder.for_config(model, tok, cfg)
    assert enc.shared_prefix
    assert all(len(enc.completion(p.pos)) != len(enc.completion(p.neg)) for p in pairs)
    return model, tok, adapters, cfg, pairs


@pytest.mark.parametrize("nll", ["sum", "mean"])
@pytest.mark.parametrize("base", [True, False])
def test_extraction_pair_gradient_matches_per_side(pair_ctx, nll, base, layout):
    import dataclasses

    from method.extract import PairEncoder, pair_diffs

    model, tok, adapters, cfg, pairs = pair_ctx
    D = {}
    for shared in (False, True):
        enc = PairEncoder.for_config(model, tok, dataclasses.replace(cfg, extract_nll=nll, shared_prefix=shared))
        D[shared] = pair_diffs(model, tok, pairs, encoder=enc, adapters=adapters, base=base)
    for name in D[False]:
        assert D[False][name].shape == (len(pairs), adapters[name].rank)
        for i in range(len(pairs)):      # each pair's row of D on its own
            assert D[False][name][i].norm() > 0
            assert _rel(D[True][name][i], D[False][name][i]) <= GRAD_RTOL, (name, i)


def test_rebound_concept_capture_matches_per_side(pair_ctx, layout):
    import dataclasses

    from baselines.rebound import completion_means
    from method.extract import PairEncoder

    model, tok, _, cfg, pairs = pair_ctx
    out = {s: completion_means(model, PairEncoder.for_config(model, tok, dataclasses.replace(cfg, shared_prefix=s)),
                               pairs, layer=1) for s in (False, True)}
    for a, b in zip(out[False], out[True]):
        assert a.shape == (len(pairs), model.config.hidden_size)
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- generation

def _draw(fn, seed: int):
    """fn's output and the RNG state it leaves, from a fixed seed."""
    torch.manual_seed(seed)
    out = fn()
    return out, torch.get_rng_state()


@pytest.mark.parametrize("lean", [True, False], ids=["lean_loop", "generate_on_shared_cache"])
@pytest.mark.parametrize("kind", KINDS)
def test_generation_prefills_each_prompt_once_and_samples_the_same_tokens(kind, lean, tmp_path, monkeypatch):
    """Same seed, same tokens from both paths and the same RNG state after (prompts of different lengths: left
    padding, positions from the mask); the shared path runs one prefill over the P prompts, then one token per row.
    lean: harness.train.sampling's loop; else (what flash-attention gets) model.generate on a shared prefill."""
    import dataclasses

    from harness.train import sampling
    from harness.train.rollout import generate

    model, tok, _, cfg = _load(kind, tmp_path)
    cfg = dataclasses.replace(cfg, max_new_tokens=16, temperature=1.0, top_k=0, top_p=1.0)
    if not lean:
        monkeypatch.setattr(sampling, "supported", lambda *a: False)
    rng = random.Random(7)
    prompts = [[rng.randrange(3, len(tok)) for _ in range(n)] for n in (19, 31, 24)]
    n = 4
    seen = []
    handle = model.register_forward_hook(lambda _m, _a, kw, _o: seen.append(tuple(kw["input_ids"].shape)),
                                         with_kwargs=True)
    out = {}
    try:
        for shared in (False, True):
            seen.clear()
            c = dataclasses.replace(cfg, shared_prefix=shared)
            out[shared] = _draw(lambda: generate(model, tok, prompts, n, c), 11)
            calls = list(seen)
            L = max(map(len, prompts))
            if shared:
                assert calls[0] == (len(prompts), L if lean else L - 1)      # one prefill, P rows
                assert calls[1] == (len(prompts) * n, 1)                     # then one token per row
            else:
                assert calls[0] == (len(prompts) * n, L)                     # every row prefills
            assert all(c == (len(prompts) * n, 1) for c in calls[1:])
    finally:
        handle.remove()
    assert out[True][0] == out[False][0]
    assert torch.equal(out[True][1], out[False][1])
    assert len({tuple(r) for rows in out[True][0] for r in rows}) == len(prompts) * n   # really sampled


def test_generation_in_chunks_that_split_a_prompts_rows_samples_the_same_tokens(tmp_path):
    """evaluate() generates in chunks of max_batch rows, which need not hold whole prompts (full: 32 rows, 10
    samples): each chunk prefills the prompts it holds once, and the chunks (so the draws) are the per-row path's."""
    import dataclasses

    from harness.train.rollout import generate

    model, tok, _, cfg = _load("smoke", tmp_path)
    cfg = dataclasses.replace(cfg, max_new_tokens=8)
    rng = random.Random(8)
    prompts = [[rng.randrange(3, len(tok)) for _ in range(n)] for n in (12, 17, 9)]
    out = {}
    for shared in (False, True):
        out[shared] = _draw(lambda: generate(model, tok, prompts, 3, dataclasses.replace(cfg, shared_prefix=shared),
                                             max_batch=4), 2)
    assert out[True][0] == out[False][0] and all(len(rows) == 3 for rows in out[True][0])
    assert torch.equal(out[True][1], out[False][1])


def _gen_config(tok, eos: list[int], **knobs):
    from transformers import GenerationConfig

    base = dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, repetition_penalty=1.0, num_beams=1,
                max_new_tokens=12, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    return GenerationConfig(**(base | knobs))


def _rows(vocab: int, lengths=(14, 21, 9), n: int = 3):
    """Distinct prompts left-padded [U, L], and each row's prompt index [U * n]."""
    rng = random.Random(5)
    prompts = [[rng.randrange(3, vocab) for _ in range(k)] for k in lengths]
    L = max(lengths)
    ids = torch.zeros(len(prompts), L, dtype=torch.long)
    attn = torch.zeros(len(prompts), L, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p):] = torch.tensor(p)
        attn[i, L - len(p):] = 1
    return ids, attn, torch.arange(len(prompts)).repeat_interleave(n)


SAMPLING_KNOBS = {      # what the presets use, and the knobs a GenerationConfig of rollout.generate can carry
    "plain": {},
    "training": dict(temperature=1.0, top_p=1.0, top_k=20),                    # TrainConfig's defaults
    "evaluation": dict(temperature=0.7, top_p=0.95, top_k=0),                  # the benchmark's eval protocol
    "min_p": dict(temperature=0.9, min_p=0.05, top_k=50),
    "min_new_tokens": dict(min_new_tokens=12, temperature=1.3),                # gpu_check's full-length rollouts
}


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    model, tok, _, _ = _load("smoke", tmp_path_factory.mktemp("gen"))
    model.eval()
    return model, tok


@pytest.mark.parametrize("knobs", SAMPLING_KNOBS, ids=list(SAMPLING_KNOBS))
def test_lean_sampling_loop_draws_what_generate_draws(smoke_model, knobs):
    """sampling.sample (one prefill per prompt, a preallocated cache) == model.generate on every row: the same
    sequences (eos, pad after it) and the same RNG state, for each sampling knob the project uses."""
    from harness.train import sampling

    model, tok = smoke_model
    gcfg = _gen_config(tok, [tok.eos_token_id], **SAMPLING_KNOBS[knobs])
    assert sampling.supported(gcfg, model)
    ids, attn, row_prompt = _rows(len(tok))
    ref, ref_rng = _draw(lambda: model.generate(input_ids=ids[row_prompt], attention_mask=attn[row_prompt],
                                                generation_config=gcfg), 3)
    out, rng = _draw(lambda: sampling.sample(model, ids, attn, row_prompt, gcfg), 3)
    assert torch.equal(out, ref)
    assert torch.equal(rng, ref_rng)
    assert len({tuple(r) for r in out.tolist()}) == len(row_prompt)


@pytest.mark.parametrize("min_new", [0, 6])
def test_lean_sampling_loop_stops_when_every_row_has_ended(smoke_model, min_new):
    """eos made likely (a bias on its logit): rows end at different steps, finished rows get pad, and the loop
    stops as soon as the last row ends, before max_new_tokens, with as many draws as generate makes; with
    min_new_tokens no row ends before it (the processor counts the new tokens it is shown)."""
    from harness.train import sampling

    model, tok = smoke_model
    eos = tok.eos_token_id
    gcfg = _gen_config(tok, [eos], max_new_tokens=40, **({"min_new_tokens": min_new} if min_new else {}))
    ids, attn, row_prompt = _rows(len(tok), n=4)

    def bias(_m, _a, out):          # p(eos) about 0.12 at every step, whatever the model
        out = out.clone()
        out[..., eos] = out.logsumexp(-1) - 2.0
        return out
    handle = model.get_output_embeddings().register_forward_hook(bias)
    try:
        ref, ref_rng = _draw(lambda: model.generate(input_ids=ids[row_prompt], attention_mask=attn[row_prompt],
                                                    generation_config=gcfg), 4)
        out, rng = _draw(lambda: sampling.sample(model, ids, attn, row_prompt, gcfg), 4)
    finally:
        handle.remove()
    L = ids.shape[1]
    ends = [(r[L:] == eos).nonzero()[0].item() for r in out]       # every row ended
    assert out.shape[1] - L < 40 and len(set(ends)) > 1
    assert min(ends) >= min_new and (min_new or min(ends) < 5)      # eos is the new token at index e
    assert max(ends) == out.shape[1] - L - 1                        # stopped at the last row's eos
    assert all((r[L + e + 1:] == tok.pad_token_id).all() for r, e in zip(out, ends))
    assert torch.equal(out, ref) and torch.equal(rng, ref_rng)


def test_lean_sampling_loop_declines_what_it_cannot_reproduce(smoke_model):
    """Anything beyond the listed processors, greedy or beam search, flash-attention: model.generate instead."""
    from types import SimpleNamespace

    from harness.train import sampling

    model, tok = smoke_model
    eos = [tok.eos_token_id]
    assert sampling.supported(_gen_config(tok, eos), model)
    for knobs in (dict(repetition_penalty=1.2), dict(do_sample=False), dict(num_beams=2), dict(no_repeat_ngram_size=2)):
        assert not sampling.supported(_gen_config(tok, eos, **knobs), model), knobs
    fa2 = SimpleNamespace(config=SimpleNamespace(_attn_implementation="flash_attention_2", is_encoder_decoder=False))
    assert not sampling.supported(_gen_config(tok, eos), fa2)
