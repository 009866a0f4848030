"""v_hack extraction on the tiny builtin:smoke Qwen3 (real adapter, real pairs, real cache), controls and Rebound.

Most tests use a 16-pair subset (4 per mode) so the module stays in seconds; the full pair set runs in
the slow test that prints the validation numbers.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from harness.presets import resolve_config
from method import extract as E
from method import pair_sets as PS
from method import pairs as P
from method.hooks import ArmContext
from policy.model import Policy


def _subset(pairs, per_mode):
    out, seen = [], {}
    for p in pairs:
        if seen.get(p.mode, 0) < per_mode:
            out.append(p)
            seen[p.mode] = seen.get(p.mode, 0) + 1
    return tuple(out)


def _make_ctx(tmp_path, seed=41, **overrides):
    from policy.adapter import wrap_model
    from policy.model_loading import load_policy

    cfg = resolve_config("smoke", "erase", seed, overrides)
    model, tok = load_policy(cfg, verbose=False)
    adapters = wrap_model(model, cfg.target_modules, cache_dir=tmp_path / "svd")
    return ArmContext(config=cfg, policy=Policy.of(model, tok, adapters), artifacts_dir=tmp_path)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # 2 shared cores: more threads only oversubscribe
    mp = pytest.MonkeyPatch()
    mp.setattr(P, "PAIRS", _subset(P.PAIRS, 4))
    mp.setattr(P, "CLEAN_PAIRS", tuple(c for c in P.CLEAN_PAIRS if c.pair_id[3:] in {p.pair_id for p in P.PAIRS}))
    E._DIFFS_MEMO.clear()
    tmp = tmp_path_factory.mktemp("extract")
    ctx = _make_ctx(tmp, heldout_pairs_frac=0.25)  # 16-pair subset: keep 4 for validation
    vs = {kind: E.get_or_extract(ctx, kind, progress=False) for kind in E.KINDS}
    yield ctx, vs, tmp
    mp.undo()
    E._DIFFS_MEMO.clear()
    torch.set_num_threads(threads)


def _n_fit(ctx):
    """Pairs left for extraction after the held-out validation split of the (patched) pair set."""
    return len(P.split_pairs(P.PAIRS, ctx.config.heldout_pairs_frac)[0])


def _orthonormal(V):
    torch.testing.assert_close(V @ V.T, torch.eye(V.shape[0]), atol=1e-4, rtol=0)


def test_real_v_shapes_meta_and_file(env):
    ctx, vs, tmp = env
    real = vs["real"]
    assert real.V and set(real.V) <= set(ctx.policy.adapters)
    for name, V in real.V.items():
        assert V.shape[1] == ctx.policy.adapters[name].rank and 1 <= V.shape[0] <= ctx.config.extract_k
        assert real.sv[name].shape == (V.shape[0],) and torch.all(real.sv[name][:-1] >= real.sv[name][1:])
        _orthonormal(V)
    floor = real.meta["sv_threshold"]
    assert all(torch.all(s >= floor) for s in real.sv.values())
    m = real.meta
    assert m["kind"] == "real" and m["model_hash"] == ctx.policy.base_hash and m["k"] == ctx.config.extract_k
    assert m["quantile"] == ctx.config.noise_quantile and m["n_pairs"] == _n_fit(ctx) and m["seed"] == -1
    assert m["pairs_hash"] and set(m["validation"]) >= {"frac_positive", "median_cos"}
    assert real.path.parent == tmp / "v" and real.path.exists()
    from method.projection import null_hackward
    for vh in vs.values():                              # every V file carries its own chance level
        stored = E.VHack.load(vh.path).meta["null_hackward"]
        assert stored["per_module"] == null_hackward(vh.V)["per_module"] and 0 < stored["mean"] < 1
    # majority-vote orientation holds on the pairs V was fitted on
    fit, _ = PS.load_pairs(P.HACK_SET, ctx.config)
    diffs = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, fit, encoder=E.PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer,
                                                                                     ctx.config))
    for name, V in real.V.items():
        assert torch.all(((diffs[name] @ V.T) > 0).sum(0) * 2 >= len(fit))


def test_cache_hit_reads_the_file_without_extracting(env, monkeypatch):
    ctx, vs, _ = env
    E._DIFFS_MEMO.clear()
    monkeypatch.setattr(E, "pair_diffs", lambda *a, **k: pytest.fail("cache miss: extraction ran again"))
    for kind in E.KINDS:
        again = E.get_or_extract(ctx, kind, progress=False)
        assert again.path == vs[kind].path and again.digest() == vs[kind].digest()


def test_controls_are_dimension_matched_to_real(env):
    _, vs, _ = env
    real = vs["real"]
    shapes = {n: tuple(v.shape) for n, v in real.V.items()}
    for kind in ("random", "shuffled", "nonhack"):
        vh = vs[kind]
        assert {n: tuple(v.shape) for n, v in vh.V.items()} == shapes, kind
        assert vh.meta["kind"] == kind and vh.meta["shapes_from"] == real.meta["key"]
        assert vh.path != real.path and vh.digest() != real.digest()
        for V in vh.V.values():
            _orthonormal(V)
    assert vs["random"].meta["seed"] == vs["shuffled"].meta["seed"] == 41 and vs["nonhack"].meta["seed"] == -1
    assert vs["nonhack"].meta["pair_set"] == P.CLEAN_SET and vs["shuffled"].meta["n_swapped"] > 0


def test_shuffled_spans_the_real_subspace_and_keeping_all_labels_is_real(env):
    """Swapping a pair's labels negates its row of D, which leaves D's right singular vectors unchanged:
    the shuffled control differs from the real V only in axis orientation (what the one-sided gate reads)."""
    ctx, vs, _ = env
    fit, _ = PS.load_pairs(P.HACK_SET, ctx.config)
    enc = E.PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, ctx.config)
    k, q = ctx.config.extract_k, ctx.config.noise_quantile
    kept = E.extract_v(ctx.policy.model, ctx.policy.tokenizer, fit, k, q, encoder=enc, swaps=torch.zeros(len(fit), dtype=torch.bool))
    for name, V in vs["real"].V.items():
        torch.testing.assert_close(kept.V[name], V, atol=1e-5, rtol=0)
    for name, V in vs["real"].V.items():
        S = vs["shuffled"].V[name]
        # same axes up to sign (ties in singular values aside, which a random model does not produce)
        torch.testing.assert_close((S * V).sum(1).abs(), torch.ones(V.shape[0]), atol=1e-3, rtol=0)


def test_seeded_controls_change_with_seed_real_does_not(env, tmp_path):
    ctx, vs, tmp = env
    ctx42 = dataclasses.replace(ctx, config=dataclasses.replace(ctx.config, seed=42))
    real42 = E.get_or_extract(ctx42, "real", progress=False)
    assert real42.path == vs["real"].path                                # seed-free: shared across seeds
    rand42 = E.get_or_extract(ctx42, "random", progress=False)
    assert rand42.path != vs["random"].path and rand42.digest() != vs["random"].digest()
    assert {n: v.shape for n, v in rand42.V.items()} == {n: v.shape for n, v in vs["random"].V.items()}


def test_extraction_at_base_ignores_and_restores_adapter_state(env):
    ctx, _, _ = env
    fit, _ = PS.load_pairs(P.HACK_SET, ctx.config)
    enc = E.PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, ctx.config)
    at_zero = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, fit[:2], encoder=enc)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in ctx.policy.adapters.values():
            m.delta_S.copy_(0.1 * torch.randn(m.delta_S.shape, generator=g))
    moved = {n: m.delta_S.detach().clone() for n, m in ctx.policy.adapters.items()}
    try:
        again = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, fit[:2], encoder=enc)
        for n in at_zero:
            torch.testing.assert_close(again[n], at_zero[n])
        for n, m in ctx.policy.adapters.items():
            assert torch.equal(m.delta_S.detach(), moved[n]) and m.delta_S.grad is None
        here = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, fit[:2], encoder=enc, base=False)   # the refresh path
        assert any(not torch.allclose(here[n], at_zero[n]) for n in at_zero)
    finally:
        with torch.no_grad():
            for m in ctx.policy.adapters.values():
                m.delta_S.zero_()


def test_control_arms_set_up_with_their_v(env):
    from harness.arms import build_arm

    ctx, vs, _ = env
    for arm, kind in (("random_v", "random"), ("shuffled_v", "shuffled"), ("nonhack_v", "nonhack")):
        a = build_arm(dataclasses.replace(ctx.config, arm=arm))
        a.setup(ctx)
        assert a.v_kind == kind and a.mode == "erase"
        assert a.artifact_hashes()["v"] == vs[kind].digest()
        assert a.artifact_hashes()["v_real"] == vs["real"].digest()


def test_rebound_concept_and_reward_hook_on_the_model(env):
    from baselines.rebound import build, get_or_extract_concept
    from policy.forward import completion_logprobs, make_batch
    from policy.model_loading import decoder_layers

    ctx, _, tmp = env
    arm = build(dataclasses.replace(ctx.config, arm="rebound"))
    arm.setup(ctx)
    n_layers = len(decoder_layers(ctx.policy.model))
    assert 0 <= arm.activation_layer < n_layers
    d = ctx.policy.model.config.hidden_size
    assert arm.v_concept.shape == (d,) and arm.v_concept.norm() > 0
    v2, meta = get_or_extract_concept(ctx, arm.activation_layer, progress=False)
    assert torch.equal(v2, arm.v_concept) and meta["n_pairs"] == _n_fit(ctx) and "validation" in meta
    assert any((tmp / "rebound").glob("concept-*.safetensors"))
    # the loop's capture (policy.forward) at arm.activation_layer feeds the reward hook; no hook is left behind
    fit, _ = PS.load_pairs(P.HACK_SET, ctx.config)
    enc = E.PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, ctx.config)
    b = make_batch(enc.prompt(fit[0].messages), [enc.completion(fit[0].pos), enc.completion(fit[0].neg)],
                   ctx.policy.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        _, acts = completion_logprobs(ctx.policy.model, b, capture_layer=arm.activation_layer)
    assert acts.shape == (2, d)
    assert all(not layer._forward_hooks for layer in decoder_layers(ctx.policy.model))
    rewards = torch.tensor([3.5, 0.5])
    new, stats = arm.reward_hook(rewards, acts)
    assert torch.all(new <= rewards) and torch.all(rewards - new <= arm.alpha + 1e-6)
    assert set(stats) == {"rebound_penalty", "rebound_cos", "rebound_frac_pen"}


@pytest.mark.slow
def test_full_pair_set_validation_numbers(tmp_path, capsys):
    """Every kind on all 72 pairs (smoke model); prints the held-out validation for the report."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    E._DIFFS_MEMO.clear()
    try:
        ctx = _make_ctx(tmp_path)
        vs = {kind: E.get_or_extract(ctx, kind, progress=False) for kind in E.KINDS}
    finally:
        torch.set_num_threads(threads)
        E._DIFFS_MEMO.clear()
    with capsys.disabled():
        for kind, vh in vs.items():
            v = vh.meta["validation"]
            print(f"\n[smoke] {kind:9s} modules={len(vh.V):2d} axes={vh.meta['n_axes']:3d} "
                  f"frac_positive={v['frac_positive']:.3f} median_cos={v['median_cos']:+.3f} "
                  f"median_hackward={v['median_hackward']:.3f} (held-out pairs: {v['n_pairs']})")
    assert vs["real"].meta["n_pairs"] + vs["real"].meta["validation"]["n_pairs"] == len(P.PAIRS)


def test_pair_gradient_is_the_loops_gradient_at_advantages_plus_minus_one(env):
    """Default extract_nll="sum": a pair's row of D equals the gradient of the loop's Dr.GRPO loss for a group of
    exactly that pair with advantages (+1, -1) (same batch code, same constant); "mean" (the ablation) does not."""
    from policy.forward import completion_logprobs, make_batch
    from policy.grpo import dr_grpo_loss

    ctx, _, _ = env
    pair = PS.load_pairs(P.HACK_SET, ctx.config)[0][0]
    enc = E.PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, ctx.config)
    assert enc.nll == "sum" and enc.norm == E._loop_norm(ctx.config)
    p_ids, pos, neg = enc.prompt(pair.messages), enc.completion(pair.pos), enc.completion(pair.neg)
    assert len(pos) != len(neg)                         # the case where mean and sum differ
    D = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, [pair], encoder=enc, adapters=ctx.policy.adapters)

    model = ctx.policy.model
    b = make_batch(p_ids, [pos, neg], ctx.policy.tokenizer.pad_token_id, next(model.parameters()).device)
    with E._eval_mode(model), E.at_base(ctx.policy.adapters):
        model.zero_grad(set_to_none=True)
        logp, _ = completion_logprobs(model, b)
        dr_grpo_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), b.completion_mask,
                     ctx.config.kl_beta, enc.norm).backward()
        loop = {n: m.delta_S.grad.detach().float().clone() for n, m in ctx.policy.adapters.items()}
        model.zero_grad(set_to_none=True)
    for n in loop:
        torch.testing.assert_close(D[n][0], loop[n], rtol=1e-3, atol=1e-9)

    mean_enc = E.PairEncoder(ctx.policy.tokenizer, ctx.config.enable_thinking, ctx.config.max_prompt_tokens, enc.eos_id,
                             nll="mean")
    Dm = E.pair_diffs(ctx.policy.model, ctx.policy.tokenizer, [pair], encoder=mean_enc, adapters=ctx.policy.adapters)
    cos = torch.nn.functional.cosine_similarity(torch.cat([Dm[n][0] for n in loop]),
                                                torch.cat([loop[n] for n in loop]), dim=0)
    assert cos < 0.999                                   # mean NLL is a different direction, not a rescale


def _swapped_heldout(monkeypatch):
    """Held-out hack pairs with hack and clean sides swapped: the real V (fitted on the unswapped fit pairs)
    then points the wrong way on them, so it fails held-out validation for real."""
    real_load = PS.load_pairs

    def load(pair_set, config):
        fit, held = real_load(pair_set, config)
        if pair_set == P.HACK_SET:
            held = [dataclasses.replace(p, pos=p.neg, neg=p.pos) for p in held]
        return fit, held
    monkeypatch.setattr(PS, "load_pairs", load)


def test_a_real_v_that_fails_validation_stops_unless_allowed(env, tmp_path, monkeypatch):
    from harness.arms import build_arm

    ctx, _, _ = env
    _swapped_heldout(monkeypatch)
    E._DIFFS_MEMO.clear()
    weak = dataclasses.replace(ctx, artifacts_dir=tmp_path)
    with pytest.raises(E.WeakVError, match=r"frac_positive=.* must exceed 0.5.*--allow-weak-v"):
        E.get_or_extract(weak, "real", progress=False)
    (path,) = (tmp_path / "v").glob("real-*.safetensors")      # kept: --allow-weak-v reuses it
    assert E.VHack.load(path).meta["validation"]["frac_positive"] <= 0.5
    with pytest.raises(E.WeakVError):                           # the cache hit is gated too
        E.get_or_extract(weak, "real", progress=False)
    with pytest.raises(E.WeakVError):                           # and every control (dimension-matched to it)
        E.get_or_extract(weak, "random", progress=False)
    arm = build_arm(dataclasses.replace(ctx.config, arm="erase"))
    with pytest.raises(E.WeakVError):                           # a run extracting on a cache miss stops at setup
        arm.setup(weak)

    allowed = dataclasses.replace(weak, config=dataclasses.replace(ctx.config, allow_weak_v=True))
    assert E.get_or_extract(allowed, "real", progress=False).path == path
    arm = build_arm(dataclasses.replace(allowed.config, arm="erase"))
    arm.setup(allowed)
    rec = arm.resolved()["v_validation"]
    assert rec["passed"] is False and rec["allow_weak_v"] is True and rec["frac_positive"] <= 0.5
    E._DIFFS_MEMO.clear()


def test_a_real_v_that_passes_is_recorded_as_passed(env):
    from harness.arms import build_arm

    ctx, vs, _ = env
    assert E.validation_passed(vs["real"])
    arm = build_arm(dataclasses.replace(ctx.config, arm="vanilla"))
    arm.setup(ctx)
    rec = arm.resolved()["v_validation"]
    assert rec["passed"] is True and rec["allow_weak_v"] is False
    assert rec["frac_positive"] == vs["real"].meta["validation"]["frac_positive"]


def test_harness_extract_stops_on_a_weak_v_and_allow_weak_v_proceeds(env, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from harness.cli import cli
    import sandbox.paths

    _swapped_heldout(monkeypatch)
    E._DIFFS_MEMO.clear()
    monkeypatch.setattr(sandbox.paths, "ARTIFACTS_DIR", tmp_path)
    args = ["extract", "--preset", "smoke", "--kind", "real", "--set", "heldout_pairs_frac=0.25"]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and "failed held-out validation" in r.output and "--allow-weak-v" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli, [*args, "--allow-weak-v"])
    assert r.exit_code == 0, r.output
    assert "real: " in r.output and "FAILED held-out validation" in r.output
    E._DIFFS_MEMO.clear()


def test_the_gate_null_is_stored_and_only_a_projecting_arm_stops_on_a_weak_v(env, tmp_path, monkeypatch):
    """Issue 20: the V file keeps the random-V null of its held-out validation; vanilla (measures only) trains on a
    weak real V and records it, erase stops."""
    from harness.arms import build_arm

    ctx, vs, _ = env
    val = vs["real"].meta["validation"]
    assert val["null_n"] == E.NULL_V_DRAWS and 0 <= val["null_frac_positive_p95"] <= 1
    assert E.validation_passed(vs["real"]) == (val["frac_positive"] > max(0.5, val["null_frac_positive_p95"]))
    _swapped_heldout(monkeypatch)
    E._DIFFS_MEMO.clear()
    weak = dataclasses.replace(ctx, artifacts_dir=tmp_path)
    van = build_arm(dataclasses.replace(ctx.config, arm="vanilla"))
    van.setup(weak)                                              # no WeakVError
    rec = van.resolved()["v_validation"]
    assert rec["passed"] is False and rec["enforced"] is False and rec["null_n"] == E.NULL_V_DRAWS
    with pytest.raises(E.WeakVError, match="random V's"):
        build_arm(dataclasses.replace(ctx.config, arm="erase")).setup(weak)
    E._DIFFS_MEMO.clear()
