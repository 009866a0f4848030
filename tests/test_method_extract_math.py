"""v_hack extraction math on synthetic pair differences with a known direction (no model, no data)."""
from __future__ import annotations

import torch

from method.extract import (VHack, apply_swaps, directions_from_diffs, label_swaps, noise_floor,
                            random_orthonormal_like, top_axes, validation_stats)


def _unit(r: int, seed: int) -> torch.Tensor:
    u = torch.randn(r, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u / u.norm()


def _diffs_along(u: torch.Tensor, coefs: list[float], noise: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(coefs, dtype=torch.float64).unsqueeze(1)
    return c * u.unsqueeze(0) + noise * torch.randn(len(coefs), u.numel(), generator=g, dtype=torch.float64)


def test_orientation_is_majority_vote_not_sign_of_mean():
    u = _unit(16, 0)
    # 15 pairs mildly hack-ward, 5 outliers strongly the other way: the MEAN points to -u,
    # the majority to +u. Majority vote must win (the seeds: sign-of-mean was outlier-fragile).
    coefs = [1.0] * 15 + [-5.0] * 5
    D = _diffs_along(u, coefs, noise=1e-3, seed=1)
    assert (D.sum(0) @ u) < 0
    V, sv = top_axes(D, k=3)
    assert V.shape == (3, 16) and sv.shape == (3,)
    assert torch.dot(V[0].double(), u) > 0.999
    assert torch.all(sv[:-1] >= sv[1:])                               # descending
    torch.testing.assert_close(V @ V.T, torch.eye(3), atol=1e-5, rtol=0)
    # the data decides the sign, not the SVD: negating every pair flips the axis
    V_neg, _ = top_axes(-D, k=3)
    assert torch.dot(V_neg[0].double(), u) < -0.999
    # every kept axis: most pairs project positively
    assert torch.all(((D.float() @ V.T) > 0).sum(0) >= len(coefs) / 2)


def test_rank_deficient_module_keeps_only_real_axes():
    u = _unit(8, 3)
    D = _diffs_along(u, [1.0, 2.0, 0.5], noise=0.0, seed=0)           # rank 1
    V, sv = top_axes(D, k=5)
    assert V.shape == (1, 8)
    assert torch.dot(V[0].double(), u) > 0.9999


def test_global_noise_floor_drops_noise_modules_whole():
    ua = _unit(16, 10)
    diffs = {
        "layers.0.q_proj": _diffs_along(ua, [1.0] * 12, noise=1e-2, seed=2),   # signal + 3 noise axes ~1e-2
        "layers.0.k_proj": 1e-4 * torch.randn(12, 16, generator=torch.Generator().manual_seed(4),
                                              dtype=torch.float64),      # pure noise ~1e-4
    }
    V, sv, thr = directions_from_diffs(diffs, k=4, quantile=0.5)
    assert set(V) == {"layers.0.q_proj"}                                  # the noise module is gone
    assert V["layers.0.q_proj"].shape == (4, 16)
    assert torch.dot(V["layers.0.q_proj"][0].double(), ua) > 0.99
    assert torch.all(sv["layers.0.q_proj"] >= thr)
    # a higher quantile cuts into the signal module's own noise axes but keeps the signal axis first
    V2, sv2, thr2 = directions_from_diffs(diffs, k=4, quantile=0.8)
    k2 = V2["layers.0.q_proj"].shape[0]
    assert 1 <= k2 < 4 and thr2 > thr
    torch.testing.assert_close(V2["layers.0.q_proj"], V["layers.0.q_proj"][:k2])
    # quantile 0 keeps everything
    V0, _, _ = directions_from_diffs(diffs, k=4, quantile=0.0)
    assert {n: v.shape[0] for n, v in V0.items()} == {"layers.0.q_proj": 4, "layers.0.k_proj": 4}


def test_noise_floor_is_global_across_modules():
    V = {"a": torch.eye(3), "b": torch.eye(3)}
    sv = {"a": torch.tensor([10.0, 9.0, 8.0]), "b": torch.tensor([3.0, 2.0, 1.0])}
    V2, sv2, thr = noise_floor(V, sv, 0.5)                # median of all six = 5.5
    assert thr == 5.5 and set(V2) == {"a"} and sv2["a"].tolist() == [10.0, 9.0, 8.0]


def test_swaps_negate_and_keep_all_is_identity():
    u = _unit(12, 5)
    diffs = {"m": _diffs_along(u, [1.0, 0.8, 1.2, 0.9, 1.1, 0.7], noise=0.05, seed=6)}
    none = torch.zeros(6, dtype=torch.bool)
    assert torch.equal(apply_swaps(diffs, none)["m"], diffs["m"])
    Va, sva, _ = directions_from_diffs(diffs, 3, 0.0)
    Vb, svb, _ = directions_from_diffs(apply_swaps(diffs, none), 3, 0.0)
    assert torch.equal(Va["m"], Vb["m"]) and torch.equal(sva["m"], svb["m"])
    swaps = torch.tensor([True, False, True, False, False, False])
    flipped = apply_swaps(diffs, swaps)["m"]
    torch.testing.assert_close(flipped[0], -diffs["m"][0])
    torch.testing.assert_close(flipped[1], diffs["m"][1])


def test_label_swaps_seeded():
    a, b, c = label_swaps(64, 41), label_swaps(64, 41), label_swaps(64, 42)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.sum()) == int(c.sum()) == 32 and int(label_swaps(7, 1).sum()) == 3


def test_swaps_change_orientation_never_the_subspace():
    """Why the shuffled control is an orientation control: row sign flips leave D's right singular vectors."""
    u = _unit(12, 9)
    D = {"m": _diffs_along(u, [1.0] * 10 + [0.8] * 10, noise=0.3, seed=11)}
    V, _, _ = directions_from_diffs(D, 4, 0.0)
    Vs, _, _ = directions_from_diffs(apply_swaps(D, label_swaps(20, 3)), 4, 0.0)
    torch.testing.assert_close((V["m"] * Vs["m"]).sum(1).abs(), torch.ones(4), atol=1e-4, rtol=0)


def test_random_v_matches_real_shapes_and_is_orthonormal():
    real = VHack(V={"x": torch.eye(3, 10), "y": torch.eye(1, 6)},
                 sv={"x": torch.tensor([3.0, 2.0, 1.0]), "y": torch.tensor([5.0])}, meta={"kind": "real"})
    V1, sv1 = random_orthonormal_like(real, seed=41)
    V2, _ = random_orthonormal_like(real, seed=41)
    V3, _ = random_orthonormal_like(real, seed=42)
    assert {n: tuple(v.shape) for n, v in V1.items()} == {"x": (3, 10), "y": (1, 6)}
    for n, v in V1.items():
        torch.testing.assert_close(v @ v.T, torch.eye(v.shape[0]), atol=1e-5, rtol=0)
        assert torch.equal(v, V2[n]) and not torch.equal(v, V3[n])
        assert torch.equal(sv1[n], real.sv[n])


def test_validation_stats_signs():
    u = _unit(16, 7)
    V = VHack(V={"m": u.float().unsqueeze(0)}, sv={"m": torch.ones(1)})
    good = {"m": _diffs_along(u, [1.0, 0.9, 1.1, -0.2], noise=0.01, seed=8)}
    s = validation_stats(good, V)
    assert s["frac_positive"] == 1.0 and s["median_cos"] > 0.9 and s["frac_pairs_positive"] == 0.75
    assert s["median_hackward"] > 0.9
    bad = {"m": -good["m"]}
    s2 = validation_stats(bad, V)
    assert s2["frac_positive"] == 0.0 and s2["median_cos"] < -0.9 and s2["median_hackward"] < 0.1


def test_vhack_roundtrip(tmp_path):
    vh = VHack(V={"model.layers.0.mlp.up_proj": torch.randn(2, 8)}, sv={"model.layers.0.mlp.up_proj": torch.ones(2)},
               meta={"kind": "shuffled", "seed": 41, "k": 12, "validation": {"frac_positive": 0.5}})
    path = vh.save(tmp_path / "v" / "x.safetensors")
    back = VHack.load(path)
    assert back.meta == vh.meta and back.path == path
    assert torch.equal(back.V["model.layers.0.mlp.up_proj"], vh.V["model.layers.0.mlp.up_proj"])
    assert back.digest() == vh.digest()
    from method.projection import v_digest
    assert v_digest(back.V) == vh.digest()
