"""Steering drift on pure noise (issue 20, item 1): does the projection alone move delta_S along V?

The toy: one rank-r delta_S per trial (all trials batched in one [trials, r] parameter: AdamW acts elementwise,
so this is the same as separate runs), a random V [k, r], and gradients that are unit Gaussian noise with no hack
signal at all. Each step the gradient is projected as the arm would (method.projection.erase) and AdamW steps.
With no signal, any mean displacement of delta_S along V is caused by the projection itself.

    noise_drift(projection)   projection in PROJECTIONS: "none" (vanilla), "one_sided", "one_sided_no_norm",
                              "two_sided" (proj_one_sided=false)

Defaults are mini's settings (r = 192, k = 3, AdamW lr 4.5e-2, weight decay 0.1, betas (0.9, 0.99), 240 steps).
"""
from __future__ import annotations

import torch

from method.projection import erase, random_orthonormal, v_displacement

# name -> (one_sided, preserve_norm), None = unprojected
PROJECTIONS: dict[str, tuple[bool, bool] | None] = {
    "none": None, "one_sided": (True, True), "one_sided_no_norm": (True, False), "two_sided": (False, True)}


def noise_drift(projection: str, *, r: int = 192, k: int = 3, lr: float = 4.5e-2, weight_decay: float = 0.1,
                betas: tuple[float, float] = (0.9, 0.99), steps: int = 240, trials: int = 20, seed: int = 0) -> dict:
    """Mean over trials of method.projection.v_displacement after `steps` AdamW steps on projected noise, plus the
    standard error over trials of the per-axis displacement ("sem_mean_per_axis")."""
    gen = torch.Generator().manual_seed(seed)
    V = random_orthonormal(k, r, 1, gen)[0]                              # [k, r]
    delta = torch.nn.Parameter(torch.zeros(trials, r))                   # [trials, r]
    opt = torch.optim.AdamW([delta], lr=lr, betas=betas, weight_decay=weight_decay)
    how = PROJECTIONS[projection]
    for _ in range(steps):
        g = torch.randn(trials, r, generator=gen)                        # pure noise: no hack signal
        if how is not None:
            g = erase(V, g, one_sided=how[0], preserve_norm=how[1])[0]   # each trial's row on its own
        delta.grad = g
        opt.step()
    per_trial = [v_displacement({"m": V}, {"m": d}) for d in delta.detach()]
    out = {key: sum(t[key] for t in per_trial) / trials
           for key in ("mean_per_axis", "frac_of_norm", "span_share", "delta_s_norm")}
    xs = [t["mean_per_axis"] for t in per_trial]
    m = sum(xs) / trials
    out["sem_mean_per_axis"] = (sum((x - m) ** 2 for x in xs) / (trials - 1)) ** 0.5 / trials ** 0.5
    out.update(projection=projection, r=r, k=k, lr=lr, weight_decay=weight_decay, steps=steps, trials=trials,
               seed=seed)
    return out


def main() -> None:   # python -m method.drift: the numbers REPRODUCE quotes
    for name in PROJECTIONS:
        d = noise_drift(name)
        print(f"{name:>18}: V.deltaS per axis {d['mean_per_axis']:+.3f} (SEM {d['sem_mean_per_axis']:.3f}), "
              f"as a fraction of ||deltaS|| {d['frac_of_norm']:+.3f}, share of ||deltaS|| in span V "
              f"{d['span_share']:.3f}, ||deltaS|| {d['delta_s_norm']:.2f}")


if __name__ == "__main__":
    main()
