"""SVD adapter: identity at delta=0, merged == factored, gradients only via factored, SVD cache,
save/load, disabled / hack-ablated modes, model hash."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from policy import adapter as A

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def tiny_model(seed: int = 0, dtype=torch.float32):
    """A random 2-layer Qwen3 (hidden 64), built from a config: no download."""
    cfg = Qwen3Config(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=16, vocab_size=128, max_position_embeddings=128,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa").to(dtype)
    return model.eval()


def randomize_deltas(model, scale=0.3, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, m in sorted(A.get_adapters(model).items()):
            m.delta_S.copy_(scale * torch.randn(m.rank, generator=g) * m.S.abs().mean())
            if m.delta_S_hack is not None:
                m.delta_S_hack.copy_(scale * torch.randn(m.rank, generator=g) * m.S.abs().mean())


IDS = torch.randint(0, 128, (2, 10), generator=torch.Generator().manual_seed(7))


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits.float()


@pytest.fixture
def wrapped(tmp_path):
    base = tiny_model()
    model = copy.deepcopy(base)
    adapters = A.wrap_model(model, TARGETS, cache_dir=tmp_path)
    return base, model, adapters


def test_wraps_every_target_and_freezes_the_rest(wrapped):
    base, model, adapters = wrapped
    assert len(adapters) == 7 * 2
    m = adapters["model.layers.0.mlp.down_proj"]
    assert m.rank == min(64, 96) and m.U.shape == (64, 64) and m.Vh.shape == (64, 96)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(".delta_S") for n in trainable)
    assert len(trainable) == len(adapters)


def test_identity_at_zero_delta(wrapped):
    base, model, _ = wrapped
    diff = (logits(model) - logits(base)).abs().max().item()
    assert diff < 1e-3, diff


def test_nonzero_delta_changes_output_and_disabled_restores_base(wrapped):
    base, model, _ = wrapped
    randomize_deltas(model)
    assert (logits(model) - logits(base)).abs().max() > 1e-2
    with A.adapter_disabled(model):
        assert (logits(model) - logits(base)).abs().max() < 1e-3
    assert (logits(model) - logits(base)).abs().max() > 1e-2  # restored on exit


def test_merged_equals_factored_and_rebuilds_only_on_change(wrapped):
    _, model, adapters = wrapped
    randomize_deltas(model)
    factored = logits(model)
    with A.merged(model):
        dense = logits(model)
    assert (dense - factored).abs().max() < 1e-4
    counts = {n: m.merge_count for n, m in adapters.items()}
    with A.merged(model):
        logits(model)
    assert {n: m.merge_count for n, m in adapters.items()} == counts  # delta unchanged: no rebuild
    one = adapters["model.layers.1.self_attn.v_proj"]
    with torch.no_grad():
        one.delta_S.add_(0.5)
    with A.merged(model):
        dense2 = logits(model)
    assert one.merge_count == counts["model.layers.1.self_attn.v_proj"] + 1
    assert adapters["model.layers.0.self_attn.q_proj"].merge_count == counts["model.layers.0.self_attn.q_proj"]
    assert (dense2 - logits(model)).abs().max() < 1e-4


def test_merged_after_optimizer_step_tracks_new_delta(wrapped):
    _, model, _ = wrapped
    with A.merged(model):
        logits(model)
    opt = torch.optim.AdamW(A.adapter_parameters(model), lr=0.05)
    model(IDS).logits.square().mean().backward()
    opt.step()
    with A.merged(model):
        dense = logits(model)
    assert (dense - logits(model)).abs().max() < 1e-4


def test_gradients_flow_only_through_factored(wrapped):
    _, model, adapters = wrapped
    out = model(IDS).logits
    out.float().logsumexp(-1).mean().backward()
    assert all(m.delta_S.grad is not None and m.delta_S.grad.abs().sum() > 0 for m in adapters.values())
    assert all(p.grad is None for n, p in model.named_parameters() if not n.endswith("delta_S"))
    with A.merged(model):
        with pytest.raises(RuntimeError, match="merged"):
            model(IDS)


def test_delta_grad_matches_the_rank_space_formula(tmp_path):
    lin = torch.nn.Linear(12, 8)
    U, S, Vh = torch.linalg.svd(lin.weight.detach(), full_matrices=False)
    m = A.SVDLinear(lin, U, S, Vh)
    x = torch.randn(5, 12)
    w = torch.randn(5, 8)
    (m(x) * w).sum().backward()
    expected = ((x @ Vh.T) * (w @ U)).sum(0)  # dL/d delta_S = sum_t (x_t Vh^T) * (dL/dy_t U)
    torch.testing.assert_close(m.delta_S.grad, expected, rtol=1e-5, atol=1e-6)


def test_svd_cache_hit_skips_the_svd(tmp_path, monkeypatch):
    base = tiny_model()
    m1 = copy.deepcopy(base)
    A.wrap_model(m1, TARGETS, cache_dir=tmp_path)
    files = list(tmp_path.glob("*.safetensors"))
    assert [f.stem for f in files] == [A.model_hash(base)]

    def boom(weights, batch=16):
        raise AssertionError("SVD recomputed despite a cache hit")
    monkeypatch.setattr(A, "_svd_by_shape", boom)
    m2 = copy.deepcopy(base)
    A.wrap_model(m2, TARGETS, cache_dir=tmp_path)
    assert A.basis_hash(m2) == A.basis_hash(m1)
    assert (logits(m2) - logits(base)).abs().max() < 1e-3
    # a different base model misses the cache (and would need the SVD)
    with pytest.raises(AssertionError, match="recomputed"):
        A.wrap_model(tiny_model(seed=3), TARGETS, cache_dir=tmp_path)


def test_svd_batched_by_shape_is_the_per_matrix_svd_and_write_cache_off_writes_nothing(tmp_path):
    base = tiny_model()
    lin = A._target_linears(base, TARGETS)
    batched = A._svd_by_shape({n: m.weight for n, m in lin.items()}, batch=3)   # chunks cross shape groups
    for name, m in lin.items():
        with A.svd_threads():
            one = torch.linalg.svd(m.weight.detach().float(), full_matrices=False)
        for got, want in zip(batched[name], one):
            assert torch.equal(got, want), name          # bit-identical on CPU: the cached bases keep their hashes
    m1 = copy.deepcopy(base)
    A.wrap_model(m1, TARGETS, cache_dir=tmp_path, write_cache=False)
    assert not list(tmp_path.iterdir())
    m2 = copy.deepcopy(base)
    A.wrap_model(m2, TARGETS, cache_dir=tmp_path)
    assert A.basis_hash(m1) == A.basis_hash(m2)


def test_save_load_roundtrip_and_wrong_base_refused(tmp_path):
    base = tiny_model()
    m1 = copy.deepcopy(base)
    A.wrap_model(m1, TARGETS, cache_dir=tmp_path, route=True)
    randomize_deltas(m1)
    path = A.save_adapter(m1, tmp_path / "ckpt" / "adapter.safetensors")
    m2 = copy.deepcopy(base)
    A.wrap_model(m2, TARGETS, cache_dir=tmp_path, route=True)
    A.load_adapter(m2, path)
    torch.testing.assert_close(logits(m2), logits(m1), rtol=0, atol=0)

    other = tiny_model(seed=5)
    A.wrap_model(other, TARGETS, cache_dir=tmp_path, route=True)
    with pytest.raises(ValueError, match="base model"):
        A.load_adapter(other, path)
    no_route = copy.deepcopy(base)
    A.wrap_model(no_route, TARGETS, cache_dir=tmp_path, route=False)
    with pytest.raises(ValueError, match="do not match"):
        A.load_adapter(no_route, path)


def test_hack_ablated_zeroes_only_the_hack_delta(tmp_path):
    base = tiny_model()
    route = copy.deepcopy(base)
    adapters = A.wrap_model(route, TARGETS, cache_dir=tmp_path, route=True)
    randomize_deltas(route)
    plain = copy.deepcopy(base)
    plain_adapters = A.wrap_model(plain, TARGETS, cache_dir=tmp_path)
    with torch.no_grad():
        for n, m in adapters.items():
            plain_adapters[n].delta_S.copy_(m.delta_S)
    assert (logits(route) - logits(plain)).abs().max() > 1e-2     # the hack delta matters...
    with A.hack_ablated(route):
        torch.testing.assert_close(logits(route), logits(plain))  # ...and ablation removes exactly it
        with A.merged(route):                                    # composes with merged weights
            torch.testing.assert_close(logits(route), logits(plain), rtol=1e-4, atol=1e-4)
    with A.merged(route):
        with A.hack_ablated(route):
            torch.testing.assert_close(logits(route), logits(plain), rtol=1e-4, atol=1e-4)
        full = logits(route)
    assert (full - logits(plain)).abs().max() > 1e-2              # merged weight re-synced on exit


def test_model_hash_is_deterministic_and_content_sensitive(tmp_path):
    a, b = tiny_model(seed=0), tiny_model(seed=0)
    assert A.model_hash(a) == A.model_hash(b)
    with torch.no_grad():
        b.model.layers[1].mlp.up_proj.weight[0, 0] += 1e-3
    assert A.model_hash(a) != A.model_hash(b)
    h = A.model_hash(a)
    A.wrap_model(a, TARGETS, cache_dir=tmp_path)
    randomize_deltas(a)
    assert A.model_hash(a) == h  # a wrapped model names its base


def test_adapter_hash_tracks_deltas(wrapped):
    _, model, adapters = wrapped
    h0 = A.adapter_hash(model)
    with torch.no_grad():
        next(iter(adapters.values())).delta_S[0] += 1.0
    assert A.adapter_hash(model) != h0


def test_greedy_generation_on_merged_weights_matches_base(wrapped):
    base, model, _ = wrapped
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        ref = base.generate(IDS[:1], **kw)
        with A.merged(model):
            out = model.generate(IDS[:1], **kw)
    assert torch.equal(out, ref)


def test_bf16_model_keeps_factors_in_model_dtype_and_deltas_fp32(tmp_path):
    base = tiny_model(dtype=torch.bfloat16)
    model = copy.deepcopy(base)
    adapters = A.wrap_model(model, TARGETS, cache_dir=tmp_path)
    m = next(iter(adapters.values()))
    assert m.U.dtype == m.Vh.dtype == torch.bfloat16 and m.S.dtype == m.delta_S.dtype == torch.float32
    assert (logits(model) - logits(base)).abs().max() < 0.1   # bf16 rounding of U, Vh only
    model(IDS).logits.float().mean().backward()
    assert m.delta_S.grad.dtype == torch.float32


def test_delta_grads_survive_gradient_checkpointing(tmp_path):
    base = tiny_model()
    plain, ckpt = copy.deepcopy(base), copy.deepcopy(base)
    ad_plain = A.wrap_model(plain, TARGETS, cache_dir=tmp_path)
    ad_ckpt = A.wrap_model(ckpt, TARGETS, cache_dir=tmp_path)
    ckpt.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    for m in (plain, ckpt):
        m.train()
        m(IDS, use_cache=False).logits.float().logsumexp(-1).mean().backward()
    for n in ad_plain:
        torch.testing.assert_close(ad_ckpt[n].delta_S.grad, ad_plain[n].delta_S.grad)


def _bf16_svd_linear(seed: int, d_in: int = 96, d_out: int = 64):
    """A bf16 Linear with singular values spread over [1, 5] (Qwen3-like), wrapped with bf16 factors."""
    g = torch.Generator().manual_seed(seed)
    U, _, Vh = torch.linalg.svd(torch.randn(d_out, d_in, generator=g), full_matrices=False)
    lin = torch.nn.Linear(d_in, d_out, bias=False)
    with torch.no_grad():
        lin.weight.copy_((U * torch.linspace(1, 5, d_out)) @ Vh)
    lin = lin.to(torch.bfloat16)
    U, S, Vh = torch.linalg.svd(lin.weight.float(), full_matrices=False)
    return A.SVDLinear(lin, U, S, Vh), g


def test_bf16_factored_forward_keeps_a_small_delta():
    """|delta| ~ 1e-3 with S in [1, 5] (lr 7e-5 on the full preset): the change the bf16 forward applies must
    follow delta. A single bf16 output cannot resolve a ~3e-4 relative change per element (its rounding noise
    is ~4x larger), so the test regresses the output change back onto each singular direction over many
    tokens: d_eff[j] = sum_t z_tj h_tj / sum_t h_tj^2 with z = dy U. Rounding S + delta to bf16 (the old
    forward) makes d_eff a per-axis step function of delta (cos ~0.15-0.45); scaling in fp32 tracks it."""
    cos = []
    for seed in range(4):
        m, g = _bf16_svd_linear(seed)
        x = torch.randn(16384, m.in_features, generator=g).to(torch.bfloat16)
        delta = 1e-3 * torch.randn(m.rank, generator=g)
        with torch.no_grad():
            y0 = m(x).float()
            m.delta_S.copy_(delta)
            dy = m(x).float() - y0                               # [N, d_out], what the bf16 forward did
            h = x.float() @ m.Vh.float().T                       # [N, r]
            z = dy @ m.U.float()                                 # back into the singular directions
            d_eff = (z * h).sum(0) / (h * h).sum(0)
        cos.append(torch.nn.functional.cosine_similarity(d_eff, delta, dim=0).item())
    assert sum(cos) / len(cos) > 0.85, cos                       # measured 0.87-0.97 per seed; old forward ~0.3


def test_bf16_factored_forward_matches_fp32_scale_exactly():
    """The scale is applied to fp32 activations and rounded once, whatever the model dtype."""
    m, g = _bf16_svd_linear(0)
    with torch.no_grad():
        m.delta_S.copy_(1e-3 * torch.randn(m.rank, generator=g))
        x = torch.randn(8, m.in_features, generator=g).to(torch.bfloat16)
        h = torch.nn.functional.linear(x, m.Vh)
        expect = torch.nn.functional.linear((h.float() * (m.S + m.delta_S)).to(torch.bfloat16), m.U)
        assert torch.equal(m(x), expect)
    m(x).float().sum().backward()
    assert m.delta_S.grad.dtype == torch.float32 and m.delta_S.grad.abs().sum() > 0


def test_bf16_merged_weight_is_the_fp32_product_rounded_once():
    m, g = _bf16_svd_linear(1)
    with torch.no_grad():
        m.delta_S.copy_(1e-3 * torch.randn(m.rank, generator=g))
    m.sync_merged()
    expect = ((m.U.float() * (m.S + m.delta_S.detach())) @ m.Vh.float()).to(torch.bfloat16)
    assert m.weight.dtype == torch.bfloat16 and torch.equal(m.weight, expect)


def test_residual_form_is_the_original_model_bit_for_bit_in_bf16_and_trains_the_same_gradient(tmp_path):
    base = tiny_model(dtype=torch.bfloat16)
    res, prod = copy.deepcopy(base), copy.deepcopy(base)
    ad_res = A.wrap_model(res, TARGETS, cache_dir=tmp_path, residual=True)
    A.wrap_model(prod, TARGETS, cache_dir=tmp_path)
    assert torch.equal(logits(res), logits(base))                      # factored forward at delta = 0
    with A.merged(res):
        assert torch.equal(logits(res), logits(base))                  # merged weights at delta = 0
    assert not torch.equal(logits(prod), logits(base))                 # the product form is a reconstruction
    orig = {n: m.weight for n, m in A._target_linears(tiny_model(dtype=torch.bfloat16), TARGETS).items()}
    with A.merged(res):
        assert all(torch.equal(m.weight, orig[n]) for n, m in ad_res.items())
    # the same delta moves both forms alike, and the gradient has the same formula: fp32, they agree to rounding
    b32 = tiny_model()
    r32, p32 = copy.deepcopy(b32), copy.deepcopy(b32)
    A.wrap_model(r32, TARGETS, cache_dir=tmp_path / "32", residual=True)
    A.wrap_model(p32, TARGETS, cache_dir=tmp_path / "32")
    for m in (r32, p32):
        randomize_deltas(m)
    torch.testing.assert_close(logits(r32), logits(p32), rtol=1e-4, atol=1e-4)
    with A.merged(r32):
        torch.testing.assert_close(logits(r32), logits(p32), rtol=1e-4, atol=1e-4)
    for m in (r32, p32):
        m.train()
        m(IDS).logits.float().pow(2).mean().backward()
    g_r = torch.cat([a.delta_S.grad for _, a in sorted(A.get_adapters(r32).items())])
    g_p = torch.cat([a.delta_S.grad for _, a in sorted(A.get_adapters(p32).items())])
    torch.testing.assert_close(g_r, g_p, rtol=1e-3, atol=1e-6)
    with A.adapter_disabled(r32):                                      # the KL reference: the exact base
        assert torch.equal(logits(r32), logits(b32))


def test_an_adapter_file_loads_only_into_its_own_form(tmp_path):
    base = tiny_model()
    res, prod = copy.deepcopy(base), copy.deepcopy(base)
    A.wrap_model(res, TARGETS, cache_dir=tmp_path, residual=True)
    A.wrap_model(prod, TARGETS, cache_dir=tmp_path)
    path = A.save_adapter(res, tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match="trained in the residual form, this model is wrapped in the product form"):
        A.load_adapter(prod, path)


def test_svd_factors_do_not_depend_on_the_callers_thread_count():
    """The SVD cache is keyed by the model alone, so whichever process computes it first (extract with the
    machine's threads, a sweep run with cpu_threads = 1) must write the same bytes: LAPACK's result depends on
    its thread count (mini's base: different U / Vh at 1 and 2 threads), so the computation pins it."""
    gen = torch.Generator().manual_seed(0)
    weights = {f"w{i}": torch.randn(512, 192, generator=gen) for i in range(3)}
    weights.update({f"s{i}": torch.randn(192, 192, generator=gen) for i in range(3)})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = A._svd_by_shape(weights)
        torch.set_num_threads(2)
        two = A._svd_by_shape(weights)
    finally:
        torch.set_num_threads(before)
    assert torch.get_num_threads() == before
    for n in weights:
        assert all(torch.equal(a, b) for a, b in zip(one[n], two[n])), n
