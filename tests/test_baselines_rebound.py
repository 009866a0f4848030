"""Rebound: penalty shape, layer choice, and the arm's reward hook (no data needed)."""
from __future__ import annotations

import types

import pytest
import torch

from baselines.rebound import ReboundArm, concept_direction, depth_fraction, rebound_layer, rebound_penalty
from policy.config import ConfigError


def test_penalty_zero_when_orthogonal_and_grows_with_cosine():
    v = torch.tensor([1.0, 0.0, 0.0, 0.0])
    angles = torch.linspace(0, torch.pi / 2, 7)                          # cos from 1 down to 0
    acts = torch.stack([torch.cos(angles), torch.sin(angles), torch.zeros(7), torch.zeros(7)], dim=1) * 3.0
    pen, cos = rebound_penalty(acts, v, alpha=0.5)
    assert pen[-1].abs() < 1e-6                                          # orthogonal -> no penalty
    assert torch.all(pen[:-1] > pen[1:])                                 # strictly grows with the cosine
    exact, _ = rebound_penalty(torch.tensor([[0.0, 2.0, 0.0, 0.0]]), v, alpha=0.5)
    assert exact.item() == 0.0
    torch.testing.assert_close(pen[0], torch.tensor(0.5))                # aligned -> alpha
    torch.testing.assert_close(pen, 0.5 * torch.relu(cos))
    # anti-aligned rollouts are not rewarded either (one-sided), and scale does not matter
    pen_neg, _ = rebound_penalty(-acts, v, alpha=0.5)
    assert torch.all(pen_neg < 1e-6)
    pen_big, _ = rebound_penalty(acts * 100, v, alpha=0.5)
    torch.testing.assert_close(pen_big, pen)


def test_layer_fraction():
    assert rebound_layer(36, 0.67) == 23                 # output of block 24 of 36 (~67% depth), 0-based index
    assert rebound_layer(28, 0.75) == 20
    assert rebound_layer(3, 0.67) == 1 and rebound_layer(4, 0.67) == 2 and rebound_layer(5, 0.67) == 2
    for n in range(3, 80):                               # every model with a block in the band gets one in it
        assert 0.6 <= depth_fraction(rebound_layer(n, 0.67), n) <= 0.75, n


def test_no_block_in_the_band_is_an_error_unless_the_layer_is_explicit():
    for n in (1, 2):                                     # depths 1.0 / 0.5, 1.0: nothing at 60-75%
        with pytest.raises(ConfigError, match=rf"{n}-block model.*60%-75%.*rebound_layer"):
            rebound_layer(n, 0.67)
    assert rebound_layer(2, 0.67, explicit=0) == 0 and rebound_layer(2, 0.67, explicit=1) == 1
    with pytest.raises(ConfigError, match="has 2 decoder blocks"):
        rebound_layer(2, 0.67, explicit=2)


def test_concept_direction_is_mean_difference():
    hp = torch.tensor([[1.0, 2.0], [3.0, 2.0]])
    hn = torch.tensor([[0.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(concept_direction(hp, hn), torch.tensor([2.0, 1.0]))


def test_reward_hook_subtracts_penalty_before_advantages():
    arm = ReboundArm(alpha=0.5, layer_frac=0.67)
    arm.v_concept = torch.tensor([0.0, 1.0, 0.0])
    rewards = torch.tensor([3.5, 3.5, 0.5, 0.5])
    acts = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 0.0], [0.0, -1.0, 0.0]])
    new, stats = arm.reward_hook(rewards, acts)
    expected = rewards - 0.5 * torch.tensor([0.0, 1.0, 2 ** -0.5, 0.0])
    torch.testing.assert_close(new, expected)
    assert stats["rebound_frac_pen"] == 0.5
    with pytest.raises(RuntimeError):
        arm.reward_hook(rewards, None)


def test_setup_uses_depth_fraction_and_concept_source():
    calls = {}

    def concept_source(ctx, layer):
        calls["layer"] = layer
        return torch.ones(8), {"n_pairs": 3}

    def v_source(ctx, kind):
        return types.SimpleNamespace(V={"a": torch.eye(1, 4)})

    layers = torch.nn.ModuleList([torch.nn.Identity() for _ in range(12)])
    model = types.SimpleNamespace(model=types.SimpleNamespace(layers=layers))
    adapter = types.SimpleNamespace(rank=4, delta_S=torch.zeros(4), delta_S_hack=None)
    cfg = types.SimpleNamespace(proj_one_sided=True, proj_preserve_norm=True, v_refresh_every=0,
                                proj_on_update=False)
    ctx = types.SimpleNamespace(config=cfg, policy=types.SimpleNamespace(model=model, adapters={"a": adapter}))
    arm = ReboundArm(alpha=0.5, layer_frac=0.67, v_source=v_source, concept_source=concept_source)
    arm.setup(ctx)
    assert arm.activation_layer == calls["layer"] == 7
    assert set(arm.artifact_hashes()) >= {"v", "rebound_concept"}
    res = arm.resolved()                                  # what config.json records
    assert res["rebound_layer"] == 7 and res["rebound_n_layers"] == 12
    assert res["rebound_depth_frac"] == pytest.approx(8 / 12) and res["rebound_depth_in_band"]
    assert res["rebound_layer_explicit"] is False

    ctx.policy.model.model.layers = layers[:2]                   # too shallow for the band
    with pytest.raises(ConfigError, match="2-block model"):
        ReboundArm(v_source=v_source, concept_source=concept_source).setup(ctx)
    arm = ReboundArm(v_source=v_source, concept_source=concept_source, layer=1)
    arm.setup(ctx)
    res = arm.resolved()
    assert calls["layer"] == 1 and res["rebound_depth_frac"] == 1.0 and res["rebound_layer_explicit"] is True
    assert res["rebound_depth_in_band"] is False
