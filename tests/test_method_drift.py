"""Issue 20 items 1-2: steering drift (does the projection alone move delta_S along V?) and the matched null."""
from __future__ import annotations

import pytest
import torch

from method.arm import ProjectionArm
from method.drift import noise_drift
from method.projection import (erase, hackward_fraction, matched_null, null_fraction, random_orthonormal,
                               v_displacement)
from tests.test_method_projection import arm_ctx, backward_bundle, fake_v_source


def test_one_sided_erase_steers_pure_noise_to_the_anti_hack_side_and_two_sided_does_not():
    """The issue's toy at mini's settings (r 192, k 3, AdamW lr 4.5e-2, wd 0.1, 240 steps, 20 trials), noise only."""
    d = {p: noise_drift(p) for p in ("none", "one_sided", "two_sided")}
    for p, x in d.items():   # the numbers (pytest -s shows them; REPRODUCE quotes `python -m method.drift`)
        print(f"{p}: V.dS/axis {x['mean_per_axis']:+.3f} (SEM {x['sem_mean_per_axis']:.3f}) frac "
              f"{x['frac_of_norm']:+.3f} span share {x['span_share']:.3f} |dS| {x['delta_s_norm']:.2f}")
    one, two, none = d["one_sided"], d["two_sided"], d["none"]
    assert one["mean_per_axis"] > 0.5 and one["mean_per_axis"] > 10 * one["sem_mean_per_axis"]
    assert one["frac_of_norm"] > 0.15 and one["span_share"] > 0.3
    for x in (two, none):    # no drift without the one-sided gate: zero within 3 SEM
        assert abs(x["mean_per_axis"]) < 3 * x["sem_mean_per_axis"] + 1e-3
    assert two["span_share"] < 0.05                      # two-sided erase keeps delta_S (almost) out of span V


def test_drift_defaults_are_minis_settings():
    """method.drift cannot import the presets (layers run one way), so its defaults copy mini's: kept in step here."""
    import inspect

    from harness.presets import resolve_config
    cfg = resolve_config("mini", "erase", 41)
    d = {k: v.default for k, v in inspect.signature(noise_drift).parameters.items()}
    assert (d["lr"], d["weight_decay"], d["steps"], d["k"]) == (cfg.lr, cfg.weight_decay, cfg.steps, cfg.extract_k)
    assert d["betas"] == (cfg.beta1, cfg.beta2)


def test_v_displacement_by_hand():
    V = {"a": torch.eye(4)[:2], "b": torch.eye(4)[1:2]}                 # a: axes e0, e1; b: axis e1
    dS = {"a": torch.tensor([3.0, -1.0, 0.0, 0.0]), "b": torch.tensor([0.0, 0.0, 4.0, 3.0])}
    d = v_displacement(V, dS)
    n_a = 10 ** 0.5
    assert d["mean_per_axis"] == pytest.approx((1.0 + 0.0) / 2)
    assert d["frac_of_norm"] == pytest.approx((1.0 / n_a + 0.0) / 2)
    assert d["span_share"] == pytest.approx((1.0 + 0.0) / 2)         # a moved only inside span V, b only outside
    assert d["per_axis"] == pytest.approx([(3.0 + 0.0) / 2, -1.0])   # axis 0 of a and b; axis 1 of a only
    assert d["delta_s_norm"] == pytest.approx((n_a + 5.0) / 2) and d["n_modules"] == 2


def test_erase_projects_each_row_of_a_batch_on_its_own():
    V = random_orthonormal(3, 16, 1, torch.Generator().manual_seed(0))[0]
    G = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
    for one_sided in (True, False):
        for preserve in (True, False):
            new, removed = erase(V, G, one_sided, preserve)
            for i in range(5):
                n1, r1 = erase(V, G[i], one_sided, preserve)
                torch.testing.assert_close(new[i], n1)
                torch.testing.assert_close(removed[i], r1)


def test_matched_null_is_the_fraction_against_the_drawn_v():
    V = {"a": torch.zeros(3, 20), "b": torch.zeros(2, 20), "c": torch.zeros(3, 20)}
    g = {n: torch.randn(20, generator=torch.Generator().manual_seed(i)) for i, n in enumerate(V)}
    got = matched_null(V, g, torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(5)                 # the same draws, by hand: shapes in sorted order
    by = {(2, 20): ["b"], (3, 20): ["a", "c"]}
    vals = []
    for (k, r), names in sorted(by.items()):
        Vr = random_orthonormal(k, r, len(names), gen)
        vals += [hackward_fraction(Vr[i], g[n]) for i, n in enumerate(names)]
    assert got == pytest.approx(float(torch.stack(vals).mean()))
    assert got == matched_null(V, g, torch.Generator().manual_seed(5))        # seeded: deterministic
    assert got != matched_null(V, g, torch.Generator().manual_seed(6))


def test_matched_null_averages_to_the_isotropic_null():
    """Rotation invariance: against a Haar-random V, ANY fixed gradient shows the isotropic chance level on average,
    so the matched null differs from null_cos only by its spread (a fact the report should not hide)."""
    g = {"m": torch.zeros(64).index_fill_(0, torch.tensor([0, 1]), 1.0)}   # a very anisotropic gradient
    V = {"m": torch.zeros(3, 64)}
    gen = torch.Generator().manual_seed(0)
    draws = [matched_null(V, g, gen) for _ in range(3000)]
    assert sum(draws) / len(draws) == pytest.approx(null_fraction(3, 64), rel=0.03)


@pytest.mark.parametrize("mode", ["erase", "measure"])
def test_projection_arm_logs_drift_and_matched_null_and_summarises_the_displacement(tmp_path, mode):
    ctx = arm_ctx(tmp_path, seed=41)
    arm = ProjectionArm("real", mode, v_source=fake_v_source([]))
    arm.setup(ctx)
    st = arm.grad_hook(backward_bundle(ctx, step=3))
    again = ProjectionArm("real", mode, v_source=fake_v_source([]))
    again.setup(arm_ctx(tmp_path / "b", seed=41))
    assert st["null_cos_matched"] == again.grad_hook(backward_bundle(again.ctx, step=3))["null_cos_matched"]
    assert 0 < st["null_cos_matched"] < 1
    from method.hooks import UpdateBundle

    with torch.no_grad():                                   # an update: delta_S moves by -V_0 in every module
        for n, m in ctx.policy.adapters.items():
            m.delta_S.sub_(arm.V_real[n][0])
    u = arm.update_hook(UpdateBundle(modules=ctx.policy.adapters, delta={}, step=3))
    k = next(iter(arm.V_real.values())).shape[0]
    assert u["v_disp"] == pytest.approx(-1.0 / k) and u["v_disp_frac"] == pytest.approx(-1.0 / k)
    assert u["v_disp_span"] == pytest.approx(1.0)
    s = arm.summary()["v_displacement"]
    assert s["mean_per_axis"] == pytest.approx(-1.0 / k) and s["per_axis"][0] == pytest.approx(-1.0)


def test_erase_two_sided_is_an_ablation_of_erase():
    from harness.arms import ABLATIONS, ARMS
    from harness.orchestrate.sweep import plan_design
    from harness.presets import resolve_config

    cfg = resolve_config("mini", "erase_two_sided", 41)
    assert cfg.proj_one_sided is False and cfg.proj_preserve_norm is True
    assert ARMS["erase_two_sided"].builder == ARMS["erase"].builder and ARMS["erase_two_sided"].reference == "erase"
    assert "erase_two_sided" in ABLATIONS
    assert "erase_two_sided" in [j.arm for j in plan_design("ablations", "smoke", [41], "runs")]


def test_erase_two_sided_no_pool_is_two_sided_erase_with_no_teacher_rows():
    """Trap 3 without the one-sided gate: compared with vanilla_no_pool, as erase_no_pool is."""
    from harness.arms import ABLATIONS, ARMS
    from harness.presets import resolve_config

    cfg = resolve_config("mini", "erase_two_sided_no_pool", 41)
    assert cfg.proj_one_sided is False and cfg.teacher_per_group == 0 and cfg.proj_preserve_norm is True
    assert ARMS["erase_two_sided_no_pool"].builder == ARMS["erase"].builder
    assert ARMS["erase_two_sided_no_pool"].reference == ARMS["erase_no_pool"].reference == "vanilla_no_pool"
    assert "erase_two_sided_no_pool" in ABLATIONS
