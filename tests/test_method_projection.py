"""Projection math (erase / no_gate / norm preservation / route / update projection) and the arms."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from method.arm import ProjectionArm, build_erase, build_route
from method.hooks import ArmContext, GradBundle, UpdateBundle
from method.projection import ProjectionConfig, erase, hackward_fraction, project_grads, project_update
from policy import adapter as A
from policy.config import TrainConfig
from policy.model import Policy
from tests.test_method_adapter import IDS, TARGETS, tiny_model

R, K = 16, 3


def orthonormal(k=K, r=R, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(r, k, generator=g))
    return q.T.contiguous()  # [k, r], orthonormal rows


def mixed_grad(V, seed=1):
    """A gradient with some hack-ward and some anti-hack-ward V components plus an orthogonal part."""
    g = torch.randn(R, generator=torch.Generator().manual_seed(seed))
    ortho = g - V.T @ (V @ g)
    return ortho + V.T @ torch.tensor([2.0, -1.5, 0.7][:V.shape[0]])


def test_erase_removes_exactly_the_hackward_component():
    V = orthonormal()
    g = mixed_grad(V)
    g_new, removed = erase(V, g, one_sided=True, preserve_norm=False)
    torch.testing.assert_close(removed, V.T @ torch.relu(V @ g))
    torch.testing.assert_close(g_new, g - removed)
    P_perp = torch.eye(R) - V.T @ V
    torch.testing.assert_close(P_perp @ g_new, P_perp @ g)       # nothing outside span(V) touched
    c_new = V @ g_new
    torch.testing.assert_close(c_new, torch.minimum(V @ g, torch.zeros(K)), atol=1e-6, rtol=0)
    assert hackward_fraction(V, g) > 0.3
    assert hackward_fraction(V, g_new) < 1e-6


def test_erase_is_identity_when_nothing_is_hackward():
    V = orthonormal()
    g = mixed_grad(V)
    g = g - V.T @ torch.relu(V @ g) - 0.1 * V.T @ torch.ones(K)   # V g <= 0 on every axis
    assert (V @ g).max() < 0
    for preserve in (False, True):
        g_new, removed = erase(V, g, one_sided=True, preserve_norm=preserve)
        assert removed.abs().max() == 0
        torch.testing.assert_close(g_new, g, rtol=1e-6, atol=1e-7)
    assert hackward_fraction(V, g) == 0


def test_norm_preservation_keeps_magnitude_and_the_gate():
    V = orthonormal()
    g = mixed_grad(V)
    g_new, _ = erase(V, g, one_sided=True, preserve_norm=True)
    torch.testing.assert_close(g_new.norm(), g.norm())
    assert (V @ g_new).max() <= 1e-6
    raw, _ = erase(V, g, one_sided=True, preserve_norm=False)
    torch.testing.assert_close(g_new / g_new.norm(), raw / raw.norm())  # same direction


def test_no_gate_removes_the_whole_span():
    V = orthonormal()
    g = mixed_grad(V)
    g_new, removed = erase(V, g, one_sided=False, preserve_norm=False)
    torch.testing.assert_close(V @ g_new, torch.zeros(K), atol=1e-6, rtol=0)
    torch.testing.assert_close(removed, V.T @ (V @ g))


def test_hackward_fraction_bounds():
    V = orthonormal()
    assert hackward_fraction(V, V.T @ torch.tensor([1.0, 2.0, 0.5])).item() == pytest.approx(1.0, abs=1e-6)
    assert hackward_fraction(V, -V.T @ torch.ones(K)).item() == 0
    assert hackward_fraction(V, torch.zeros(R)).item() == 0


class FakeAdapter(nn.Module):
    def __init__(self, r=R, route=False):
        super().__init__()
        self.delta_S = nn.Parameter(torch.zeros(r))
        self.delta_S_hack = nn.Parameter(torch.zeros(r)) if route else None

    @property
    def rank(self):
        return self.delta_S.shape[0]


def bundle(route=False, n=3):
    mods = {f"m{i}": FakeAdapter(route=route) for i in range(n)}
    g_s, g_t = {}, {}
    V = {}
    for i, (name, m) in enumerate(mods.items()):
        V[name] = orthonormal(seed=10 + i)
        g_s[name] = mixed_grad(V[name], seed=20 + i)
        g_t[name] = 0.5 * mixed_grad(V[name], seed=30 + i)
        m.delta_S.grad = g_s[name] + g_t[name]
        if route:
            m.delta_S_hack.grad = (g_s[name] + g_t[name]).clone()  # what backward leaves there
    return mods, g_s, g_t, V


def test_project_grads_stats_and_unprojected_modules():
    mods, g_s, g_t, V = bundle()
    V_arm = {k: v for k, v in V.items() if k != "m2"}            # m2 absent from V: not projected
    g2 = mods["m2"].delta_S.grad.clone()
    g0 = mods["m0"].delta_S.grad.clone()
    st = project_grads(mods, g_s, g_t, V_arm, V, ProjectionConfig("erase", True, True))
    assert set(st) == {"cos_pre", "cos_pre_s", "cos_pre_t", "cos_post", "frac_fired"}
    assert st["cos_pre"] == pytest.approx(sum(hackward_fraction(V[n], g_s[n] + g_t[n]).item() for n in V) / 3)
    assert st["cos_pre_s"] == pytest.approx(sum(hackward_fraction(V[n], g_s[n]).item() for n in V) / 3)
    assert st["frac_fired"] == 1.0
    assert torch.equal(mods["m2"].delta_S.grad, g2)
    assert hackward_fraction(V["m0"], mods["m0"].delta_S.grad) < 1e-6
    torch.testing.assert_close(mods["m0"].delta_S.grad.norm(), g0.norm())
    # cos_post: m0, m1 projected (0), m2 untouched
    assert st["cos_post"] == pytest.approx(hackward_fraction(V["m2"], g2).item() / 3, abs=1e-6)


def test_measure_only_leaves_gradients_and_control_v_is_measured_against_real_v():
    mods, g_s, g_t, V = bundle()
    before = {n: m.delta_S.grad.clone() for n, m in mods.items()}
    st = project_grads(mods, g_s, g_t, V, V, ProjectionConfig("measure"))
    assert all(torch.equal(m.delta_S.grad, before[n]) for n, m in mods.items())
    assert st["cos_post"] == pytest.approx(st["cos_pre"])
    # a control V projects, but the statistics still use the real V
    V_ctrl = {n: orthonormal(seed=99 + i) for i, n in enumerate(V)}
    st = project_grads(mods, g_s, g_t, V_ctrl, V, ProjectionConfig("erase", True, False))
    for n, m in mods.items():
        assert hackward_fraction(V_ctrl[n], m.delta_S.grad) < 1e-6
    assert st["cos_post"] > 0.05     # the real hack axes were not the ones removed


def test_route_moves_the_removed_part_into_delta_s_hack():
    mods, g_s, g_t, V = bundle(route=True)
    V_arm = {k: v for k, v in V.items() if k != "m1"}
    g = {n: m.delta_S.grad.clone() for n, m in mods.items()}
    project_grads(mods, g_s, g_t, V_arm, V, ProjectionConfig("route", True, True))
    for n, m in mods.items():
        torch.testing.assert_close(m.delta_S.grad + m.delta_S_hack.grad, g[n])   # exact split, no rescale
        if n in V_arm:
            torch.testing.assert_close(m.delta_S_hack.grad, V[n].T @ torch.relu(V[n] @ g[n]))
            assert hackward_fraction(V[n], m.delta_S.grad) < 1e-6
        else:
            assert m.delta_S_hack.grad.abs().max() == 0


def adam_leak_setup():
    """Step 1 pushes hack-ward unprojected; step 2's gradient is erased, but Adam's m still carries hack mass."""
    mods = {"m0": FakeAdapter()}
    V = {"m0": orthonormal(k=1)}
    opt = torch.optim.AdamW([mods["m0"].delta_S], lr=0.1, betas=(0.9, 0.99), weight_decay=0.0)
    mods["m0"].delta_S.grad = 5.0 * V["m0"][0]             # V g > 0: descent moves -V, a hack-ward update
    opt.step()
    g = torch.randn(R, generator=torch.Generator().manual_seed(3))
    mods["m0"].delta_S.grad = g - V["m0"].T @ (V["m0"] @ g)  # no V component at all
    before = mods["m0"].delta_S.detach().clone()
    opt.step()
    delta = {"m0": mods["m0"].delta_S.detach() - before}
    return mods, V, delta, before


def test_update_projection_closes_the_adam_momentum_leak():
    mods, V, delta, _ = adam_leak_setup()
    cfg = ProjectionConfig("erase", True, False)
    st = project_update(mods, delta, V, V, cfg, apply=False)
    assert st["cos_update"] > 0.1                           # the leak: update still hack-ward
    mods, V, delta, before = adam_leak_setup()
    st = project_update(mods, delta, V, V, cfg, apply=True)
    applied = mods["m0"].delta_S.detach() - before
    assert (V["m0"] @ applied).min() >= -1e-7                # no hack-ward (V delta < 0) motion left
    assert st["cos_update"] < 1e-6 and st["cos_update_pre"] > 0.1


def test_update_sign_a_descent_step_on_a_hackward_gradient_is_a_hackward_update():
    """V = e0, g = [2, 1, 0, 0] (V g > 0: hack-ward gradient), delta = -0.1 g (what SGD applies)."""
    V = {"m0": torch.eye(4)[:1]}
    g = torch.tensor([2.0, 1.0, 0.0, 0.0])
    for mode in ("erase", "route"):
        mods = {"m0": FakeAdapter(r=4, route=mode == "route")}
        delta = {"m0": -0.1 * g}
        with torch.no_grad():
            mods["m0"].delta_S.add_(delta["m0"])           # the optimizer already applied it
        cfg = ProjectionConfig(mode, True, False)
        assert project_update(mods, delta, V, V, cfg, apply=False)["cos_update"] > 0.5
        st = project_update(mods, delta, V, V, cfg, apply=True)
        applied = mods["m0"].delta_S.detach()
        assert st["cos_update_pre"] > 0.5 and st["cos_update"] < 1e-6
        assert (V["m0"] @ applied).min() >= -1e-7 and hackward_fraction(V["m0"], -applied) < 1e-6
        torch.testing.assert_close(applied, torch.tensor([0.0, -0.1, 0.0, 0.0]))   # anti-hack / orthogonal kept
        if mode == "route":                                # the hack-ward motion went to delta_S_hack, sum kept
            torch.testing.assert_close(mods["m0"].delta_S_hack.detach(), torch.tensor([-0.2, 0.0, 0.0, 0.0]))


# ------------------------------------------------------------------------------ arms on a real model

def arm_ctx(tmp_path, route=False, **cfg):
    model = tiny_model()
    adapters = A.wrap_model(model, TARGETS, cache_dir=tmp_path, route=route)
    config = TrainConfig(**cfg)
    return ArmContext(config=config, policy=Policy.of(model, None, adapters), artifacts_dir=tmp_path)


def fake_v_source(calls):
    def source(ctx, kind):
        calls.append(kind)
        seed = {"real": 0, "random": 1}[kind] + 100 * sum(1 for c in calls if c == kind)
        V = {n: orthonormal(k=2, r=m.rank, seed=seed + i) for i, (n, m) in enumerate(sorted(ctx.policy.adapters.items()))}
        return SimpleNamespace(V=V, sv={}, meta={"kind": kind})
    return source


def backward_bundle(ctx, step=0):
    """Student and teacher halves backwarded separately, as the loop does."""
    model, adapters = ctx.policy.model, ctx.policy.adapters
    model.zero_grad(set_to_none=True)
    model(IDS[:1]).logits.float().logsumexp(-1).mean().backward()        # student half
    g_s = {n: m.delta_S.grad.clone() for n, m in adapters.items()}
    model(IDS[1:]).logits.float().logsumexp(-1).mean().backward()        # teacher half (accumulates)
    g_t = {n: m.delta_S.grad - g_s[n] for n, m in adapters.items()}
    return GradBundle(modules=adapters, g_s=g_s, g_t=g_t, step=step)


def test_erase_arm_projects_live_gradients_with_real_v(tmp_path):
    ctx = arm_ctx(tmp_path)
    calls = []
    arm = ProjectionArm("real", "erase", v_source=fake_v_source(calls))
    arm.setup(ctx)
    assert calls == ["real"]
    gb = backward_bundle(ctx)
    g = {n: m.delta_S.grad.clone() for n, m in ctx.policy.adapters.items()}
    for n in g:
        torch.testing.assert_close(gb.g_s[n] + gb.g_t[n], g[n])
    st = arm.grad_hook(gb)
    assert st["cos_pre"] > 0 and st["cos_post"] < 1e-6 and 0 < st["frac_fired"] <= 1
    for n, m in ctx.policy.adapters.items():
        torch.testing.assert_close(m.delta_S.grad.norm(), g[n].norm())       # preserve_norm default on
    assert set(arm.artifact_hashes()) == {"v", "v_real", "v_kind"}


def test_control_arm_projects_with_its_own_v_and_measures_real(tmp_path):
    ctx = arm_ctx(tmp_path, proj_preserve_norm=False)
    calls = []
    arm = ProjectionArm("random", "erase", v_source=fake_v_source(calls))
    arm.setup(ctx)
    assert calls == ["real", "random"]
    assert arm.artifact_hashes()["v"] != arm.artifact_hashes()["v_real"]
    st = arm.grad_hook(backward_bundle(ctx))
    for n, m in ctx.policy.adapters.items():
        assert hackward_fraction(arm.V_arm[n], m.delta_S.grad) < 1e-6
    assert st["cos_post"] > 0


def test_route_arm_needs_route_adapters_and_splits_the_gradient(tmp_path):
    with pytest.raises(RuntimeError, match="route=True"):
        build_route(None).setup(arm_ctx(tmp_path))
    ctx = arm_ctx(tmp_path, route=True)
    arm = ProjectionArm("real", "route", v_source=fake_v_source([]))
    assert arm.uses_route and not build_erase(None).uses_route
    arm.setup(ctx)
    gb = backward_bundle(ctx)
    g = {n: m.delta_S.grad.clone() for n, m in ctx.policy.adapters.items()}
    arm.grad_hook(gb)
    for n, m in ctx.policy.adapters.items():
        torch.testing.assert_close(m.delta_S.grad + m.delta_S_hack.grad, g[n])


def test_v_refresh_refetches_every_n_steps_and_update_hook_logs_cos_update(tmp_path):
    ctx = arm_ctx(tmp_path, v_refresh_every=2, proj_on_update=True)
    calls = []
    arm = ProjectionArm("real", "erase", v_source=fake_v_source(calls))
    arm.setup(ctx)
    opt = torch.optim.AdamW(A.adapter_parameters(ctx.policy.model), lr=0.01)
    for step in range(5):
        st = arm.grad_hook(backward_bundle(ctx, step))
        before = {n: m.delta_S.detach().clone() for n, m in ctx.policy.adapters.items()}
        opt.step()
        delta = {n: m.delta_S.detach() - before[n] for n, m in ctx.policy.adapters.items()}
        ust = arm.update_hook(UpdateBundle(modules=ctx.policy.adapters, delta=delta, step=step))
        assert ust["cos_update"] < 1e-6
        for n, m in ctx.policy.adapters.items():
            assert (arm.V_arm[n] @ (m.delta_S.detach() - before[n])).min() >= -1e-6   # no hack-ward motion
    assert calls == ["real"] * 3 and arm.v_refreshes == 2   # setup + steps 2 and 4


def test_vanilla_measures_but_does_not_touch(tmp_path):
    from baselines.vanilla import build
    ctx = arm_ctx(tmp_path, proj_on_update=True)
    arm = build(None)
    arm._v_source = fake_v_source([])
    arm.setup(ctx)
    gb = backward_bundle(ctx)
    g = {n: m.delta_S.grad.clone() for n, m in ctx.policy.adapters.items()}
    st = arm.grad_hook(gb)
    assert all(torch.equal(m.delta_S.grad, g[n]) for n, m in ctx.policy.adapters.items())
    assert st["cos_pre"] > 0 and st["cos_post"] == pytest.approx(st["cos_pre"]) and st["frac_fired"] == 0
    ust = arm.update_hook(UpdateBundle(modules=ctx.policy.adapters, delta={n: -0.01 * g[n] for n in g}, step=0))
    assert set(ust) == {"cos_update", "v_disp", "v_disp_frac", "v_disp_span"}   # measured, never projected


def test_registry_builds_the_three_projection_arms():
    from harness.arms import build_arm
    modes = {}
    for name in ("vanilla", "erase", "route"):
        arm = build_arm(TrainConfig(arm=name))
        assert isinstance(arm, ProjectionArm) and arm.v_kind == "real"
        modes[name] = arm.mode
    assert modes == {"vanilla": "measure", "erase": "erase", "route": "route"}


def test_route_keeps_delta_s_hack_inside_span_v_under_adamw(tmp_path):
    """delta_S_hack only ever gets gradients in span(V), but AdamW's per-coordinate normalisation moves it out;
    the route arm's update hook projects it back every step, so evaluation's zeroing removes only span(V)."""
    from method.projection import out_of_span_share

    ctx = arm_ctx(tmp_path, route=True)
    arm = ProjectionArm("real", "route", v_source=fake_v_source([]))
    arm.setup(ctx)
    opt = torch.optim.AdamW(A.adapter_parameters(ctx.policy.model), lr=0.01, weight_decay=0.1)
    for step in range(4):
        arm.grad_hook(backward_bundle(ctx, step))
        for n, m in ctx.policy.adapters.items():       # the gradient it receives lies in span(V) ...
            assert out_of_span_share(arm.V_arm[n], m.delta_S_hack.grad) < 1e-5
        opt.step()
        st = arm.update_hook(UpdateBundle(modules=ctx.policy.adapters, delta={}, step=step))
        assert st["hack_out_of_span_pre"] > 1e-2           # ... yet the AdamW step leaves it outside
        assert st["hack_out_of_span"] < 1e-5
        moved = [n for n, m in ctx.policy.adapters.items() if m.delta_S_hack.detach().any()]
        assert moved
        for n in moved:
            assert out_of_span_share(arm.V_arm[n], ctx.policy.adapters[n].delta_S_hack) < 1e-5
        opt.zero_grad(set_to_none=True)


def test_confine_route_zeroes_delta_s_hack_of_modules_without_v():
    from method.projection import confine_route

    mods = {"m0": FakeAdapter(route=True), "m1": FakeAdapter(route=True)}
    V = {"m0": orthonormal()}
    with torch.no_grad():
        for m in mods.values():
            m.delta_S_hack.copy_(torch.randn(R, generator=torch.Generator().manual_seed(7)))
    inside = V["m0"].T @ (V["m0"] @ mods["m0"].delta_S_hack.detach())
    st = confine_route(mods, V)
    torch.testing.assert_close(mods["m0"].delta_S_hack.detach(), inside)
    assert mods["m1"].delta_S_hack.abs().max() == 0 and st["hack_out_of_span"] < 1e-6


def test_null_hackward_is_the_chance_level_of_an_isotropic_gradient():
    import math

    from method.projection import null_fraction, null_hackward

    for r in (16, 256):        # k = 1 has a closed form: E relu(u_1) = E|u_1| / 2 = G(r/2) / (2 sqrt(pi) G((r+1)/2))
        exact = math.exp(math.lgamma(r / 2) - math.lgamma((r + 1) / 2)) / (2 * math.sqrt(math.pi))
        assert null_fraction(1, r) == pytest.approx(exact, rel=0.01)
    V = {"a": orthonormal(k=3, r=R, seed=0), "b": orthonormal(k=1, r=R, seed=1)}
    nh = null_hackward(V)
    assert nh == null_hackward(V)                                           # fixed seed
    assert set(nh["per_module"]) == {"a", "b"} and nh["per_module"]["a"] > nh["per_module"]["b"]
    assert nh["mean"] == pytest.approx((nh["per_module"]["a"] + nh["per_module"]["b"]) / 2)
    # an independent check: isotropic gradients measured the way cos_pre measures them
    g = torch.randn(4000, R, generator=torch.Generator().manual_seed(5))
    emp = torch.stack([hackward_fraction(V["a"], gi) for gi in g]).mean().item()
    assert emp == pytest.approx(nh["per_module"]["a"], rel=0.03)


def test_arms_log_null_cos_for_the_real_v(tmp_path):
    from method.projection import null_hackward

    ctx = arm_ctx(tmp_path)
    arm = ProjectionArm("random", "erase", v_source=fake_v_source([]))
    arm.setup(ctx)
    st = arm.grad_hook(backward_bundle(ctx))
    assert st["null_cos"] == null_hackward(arm.V_real)["mean"] != null_hackward({"x": torch.eye(R)[:1]})["mean"]
