"""Issue 20 item 3: a validation gate that can fail. Held-out pairs split by template, the real V against the 95th
percentile of random V's of its shapes on the same held-out pairs, and only projecting arms stopped by a weak V."""
from __future__ import annotations

import hashlib

import pytest
import torch

from harness.presets import resolve_config
from method import extract as E
from method import pair_sets as PS
from method import pairs as P


def test_percentile_is_nearest_rank():
    xs = [float(i) for i in range(1, 101)]                    # 1 .. 100
    assert E.percentile(xs, 95) == 95.0 and E.percentile(xs, 100) == 100.0 and E.percentile(xs, 1) == 1.0
    assert E.percentile([0.2, 0.9, 0.5], 50) == 0.5


def _synthetic(n_modules=14, r=16, k=2, n_pairs=6, signal=1.0, seed=0):
    """Held-out pair differences whose mean points along e0 in every module, and a V whose top axis is e0."""
    g = torch.Generator().manual_seed(seed)
    diffs = {f"m{i}": signal * torch.eye(r)[0] + torch.randn(n_pairs, r, generator=g) * 0.1 for i in range(n_modules)}
    V = {n: torch.eye(r)[:k].clone() for n in diffs}
    return diffs, E.VHack(V=V, sv={n: torch.ones(k) for n in V})


def test_the_random_v_null_sits_near_a_coin_and_a_real_direction_clears_its_95th_percentile():
    diffs, vh = _synthetic()
    null = E.null_validation(diffs, vh)
    assert null["null_n"] == E.NULL_V_DRAWS >= 100
    assert 0.35 < null["null_frac_positive_mean"] < 0.65         # a random top axis: positive on half the modules
    assert 0.6 <= null["null_frac_positive_p95"] < 1.0
    assert E.validation_stats(diffs, vh)["frac_positive"] == 1.0 and null["null_percentile_of_v"] == 100.0
    assert null == E.null_validation(diffs, vh)                   # seeded


@pytest.mark.parametrize("fp,p95,passed", [(0.714, 0.786, False),   # the random V's 0.714 on mini: > 0.5, not > p95
                                           (0.857, 0.786, True), (0.45, 0.3, False), (0.714, None, True)])
def test_validation_passed_needs_both_half_and_the_null(fp, p95, passed):
    val = {"frac_positive": fp} if p95 is None else {"frac_positive": fp, "null_frac_positive_p95": p95}
    assert E.validation_passed(E.VHack(V={}, sv={}, meta={"validation": val})) is passed


def _old_split(pairs, frac):
    """split_pairs before issue 20: by a hash of the pair id."""
    fit, held = [], []
    for mode in P.MODES:
        ps = sorted((p for p in pairs if p.mode == mode), key=lambda p: hashlib.sha256(
            f"pair-split:{p.pair_id.removeprefix('cl-')}".encode()).hexdigest())
        k = int(round(len(ps) * frac))
        held += ps[:k]
        fit += ps[k:]
    return sorted(fit, key=lambda p: p.pair_id), sorted(held, key=lambda p: p.pair_id)


def test_mini_heldout_pairs_share_no_template_with_the_fit_pairs():
    cfg = resolve_config("mini", "erase", 41)
    fit, held = PS.load_pairs(P.HACK_SET, cfg)
    assert held and all(p.template_group for p in fit + held)
    assert not {p.template_group for p in fit} & {p.template_group for p in held}
    for mode in P.MODES:                                       # every mode keeps a held-out template
        assert any(p.mode == mode for p in held)
    cfit, cheld = PS.load_pairs(P.CLEAN_SET, cfg)               # clean pairs fall on the side of their hack pair
    assert {p.pair_id.removeprefix("cl-") for p in cheld} == {p.pair_id for p in held}
    assert P.split_tag(fit + held) == {"split": "template"}


def test_leetcode_pairs_split_exactly_as_before():
    assert P.split_pairs(P.PAIRS, 0.1) == _old_split(P.PAIRS, 0.1)
    assert P.split_pairs(P.CLEAN_PAIRS, 0.1) == _old_split(P.CLEAN_PAIRS, 0.1)
    assert P.split_tag(P.PAIRS) == {}                          # so their V cache keys do not change


@pytest.mark.parametrize("arm,enforced", [("vanilla", False), ("rebound", False), ("erase", True),
                                          ("route", True), ("random_v", True)])
def test_only_arms_that_project_are_stopped_by_a_weak_real_v(arm, enforced, monkeypatch):
    from harness.arms import build_arm
    from method.arm import ProjectionArm

    seen = []

    def fake(ctx, kind, progress=True, enforce=True):
        seen.append((kind, enforce))
        raise RuntimeError("stop")                            # setup goes no further than asking for V

    monkeypatch.setattr(E, "get_or_extract", fake)
    a = build_arm(resolve_config("smoke", arm, 41))
    proj = a.measure if arm == "rebound" else a
    assert isinstance(proj, ProjectionArm)
    proj.ctx = None
    with pytest.raises(RuntimeError, match="stop"):
        proj._load_v()
    assert seen == [("real", enforced)]


# --- item 7: the non-hack pairs share no side with the hack pairs -------------------------------------------

@pytest.mark.parametrize("preset", ["mini", "smoke"])
def test_nonhack_pairs_share_no_side_with_the_hack_pairs(preset):
    cfg = resolve_config(preset, "erase", 41)
    hack = [p for part in PS.load_pairs(P.HACK_SET, cfg) for p in part]
    clean = [p for part in PS.load_pairs(P.CLEAN_SET, cfg) for p in part]
    sides = {t for p in hack for t in (p.pos, p.neg)}
    assert clean and not sides & {t for p in clean for t in (p.pos, p.neg)}


# --- item 7b: the minimal-contrast pair set ------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["mini", "smoke"])
def test_minimal_pairs_differ_by_the_lever_alone(preset):
    from sandbox.loopholes import defines_check

    cfg = resolve_config(preset, "erase_minimal", 41)
    hack_fit, hack_held = PS.load_pairs(P.HACK_SET, cfg)
    fit, held = PS.load_pairs(P.MINIMAL_SET, cfg)
    assert len(fit) == len(hack_fit) and len(held) == len(hack_held)
    hack_neg = {p.pair_id: p.neg for p in hack_fit + hack_held}
    for p in fit + held:
        assert p.neg == hack_neg[p.pair_id.removeprefix("mn-")]          # the hack pair's honest side
        body, lever = p.neg[:-len("\n```")], P.LEVERS[p.mode]
        assert p.pos == body + "\n\n\n" + lever + "```"                   # ... plus its mode's lever, nothing else
        code = p.pos.removeprefix("```python\n").removesuffix("```")
        assert defines_check(code, p.mode)                                  # the syntactic detector
        assert not defines_check(p.neg.removeprefix("```python\n").removesuffix("```"), p.mode)
    assert {p.pair_id.removeprefix("mn-") for p in held} == {p.pair_id for p in hack_held}   # the same split


def test_erase_minimal_is_an_extraction_ablation():
    from harness.arms import ABLATIONS, ARMS
    from harness.orchestrate.sweep import plan_design
    from policy.config import ConfigError

    assert resolve_config("mini", "erase_minimal", 41).v_pairs == "minimal"
    assert resolve_config("mini", "erase", 41).v_pairs == "hack"
    assert ARMS["erase_minimal"].reference == "erase" and "erase_minimal" in ABLATIONS
    assert "erase_minimal" in [j.arm for j in plan_design("ablations", "smoke", [41], "runs")]
    with pytest.raises(ConfigError, match="v_pairs"):
        resolve_config("mini", "erase", 41, {"v_pairs": "nope"})
