"""Rank-space gradient projection against v_hack.

Per module, V [k, r] has orthonormal rows spanning the hack directions in the SVD basis of W,
and g [r] is delta_S.grad. With c = V g [k] (the component of g along each hack axis):

    erase (one-sided):  g' = g - V^T relu(c)      # remove only hack-WARD mass; never add hack mass
    erase (no_gate):    g' = g - V^T c            # remove the whole span
    preserve_norm:      g' <- g' * ||g|| / ||g'|| # the spec's default: same step size, new direction
    route:              delta_S.grad = g - V^T relu(c),  delta_S_hack.grad = V^T relu(c)
                        (exact split, no rescale, so the sum still equals g); after each optimizer step
                        delta_S_hack <- V^T V delta_S_hack (confine_route): AdamW normalises per coordinate,
                        so a gradient inside span(V) gives an update that is not, and zeroing delta_S_hack
                        at evaluation would then remove more than the hack directions
    measure:            g untouched (vanilla), statistics only

The statistic everywhere is the hack-ward fraction ||relu(V g)|| / ||g|| in [0, 1]: 0 means g
has no component pointing toward any hack axis; after one-sided erase it is exactly 0.

Chance level (null_hackward): the hack-ward fraction an isotropic random gradient shows against V. Only
the shape matters: for g uniform in direction, V g is distributed as the first k_m coordinates of a
uniform unit vector in R^r, so per module E ||relu(V g)|| / ||g|| depends on (k_m, r) alone. cos_pre
means something only as a multiple of it.

Arms may project with a control V (random / shuffled / non-hack) while every cos_* statistic is
measured against the REAL V, so all arms' diagnostics are comparable.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch

# The projection vocabulary (one registry; arms and reports refer to these names).
MODES = ("erase", "route", "measure")
EPS = 1e-12


def hackward_fraction(V: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """||relu(V g)|| / ||g||, a 0-dim tensor (0 when g = 0). V [k, r], g [r]."""
    g = g.float()
    return torch.relu(V @ g).norm() / g.norm().clamp_min(EPS)


def erase(V: torch.Tensor, g: torch.Tensor, one_sided: bool = True,
          preserve_norm: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (g_new, removed), both [..., r] fp32, where removed = V^T relu(V g) (or V^T V g without the gate).

    g_new = g - removed, rescaled to ||g|| when preserve_norm (and anything is left to rescale). g may carry
    leading batch dimensions [..., r] (each row projected on its own).
    """
    g = g.float()
    c = g @ V.T                                 # [..., k]
    if one_sided:
        c = torch.relu(c)
    removed = c @ V                             # [..., r]
    g_new = g - removed
    if preserve_norm:
        n_new = g_new.norm(dim=-1, keepdim=True)
        scale = torch.where(n_new > EPS, g.norm(dim=-1, keepdim=True) / n_new.clamp_min(EPS),
                            torch.zeros_like(n_new))
        g_new = g_new * scale
    return g_new, removed


@dataclass
class ProjectionConfig:
    mode: str = "erase"          # one of MODES
    one_sided: bool = True       # False = no_gate
    preserve_norm: bool = True   # ignored by route (its split must sum to g)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown projection mode {self.mode!r}; choose from {MODES}")

    @classmethod
    def from_train_config(cls, config, mode: str) -> "ProjectionConfig":
        return cls(mode=mode, one_sided=config.proj_one_sided, preserve_norm=config.proj_preserve_norm)


NULL_SAMPLES, NULL_SEED = 200_000, 0   # the fixed-seed Monte Carlo of null_hackward (relative std error < 0.5%)


def null_fraction(k: int, r: int, n: int = NULL_SAMPLES, seed: int = NULL_SEED) -> float:
    """E ||relu(V u)|| for u uniform on the unit sphere of R^r and V [k, r] with orthonormal rows.

    By rotation invariance V u ~ z / sqrt(|z|^2 + c) with z ~ N(0, I_k), c ~ chi2(r - k): no [n, r] draw needed.
    """
    with torch.random.fork_rng(devices=[]):              # seeded, and the caller's RNG stream is untouched
        torch.manual_seed(int(seed) * 1_000_003 + 7919 * int(k) + int(r))
        z = torch.randn(n, k, dtype=torch.float64)                                   # [n, k]
        rest = (torch.distributions.Chi2(torch.tensor(float(r - k), dtype=torch.float64)).sample((n,))
                if r > k else torch.zeros(n, dtype=torch.float64))                  # [n] chi2(r - k)
    frac = torch.relu(z).norm(dim=1) / (z.pow(2).sum(1) + rest).sqrt().clamp_min(EPS)
    return float(frac.mean())


def null_hackward(V: dict[str, torch.Tensor], n: int = NULL_SAMPLES, seed: int = NULL_SEED) -> dict:
    """Chance-level hack-ward fraction of an isotropic gradient against V, per module and the mean over modules
    (the same mean cos_pre takes) -> {"mean", "per_module", "n_samples", "seed"}."""
    cache: dict[tuple[int, int], float] = {}
    per = {}
    for name in sorted(V):
        k, r = (int(x) for x in V[name].shape)
        if (k, r) not in cache:
            cache[(k, r)] = null_fraction(k, r, n, seed)
        per[name] = cache[(k, r)]
    mean = sum(per.values()) / len(per) if per else float("nan")
    return {"mean": mean, "per_module": per, "n_samples": int(n), "seed": int(seed)}


# --- steering drift (issue 20): where delta_S has moved along V ---------------------------------------------------
#
# V is oriented for gradients (V g > 0: descending g moves toward the hack), so a descent step along a hack-ward
# gradient LOWERS V delta_S: V delta_S > 0 is the anti-hack side. One-sided erase removes only relu(V g), so pure
# noise, whose V g averages to zero, leaves a gradient whose V-component is never positive: a steady push of
# delta_S to the anti-hack side of V that no hack signal caused. These measure it.

def v_displacement(V: dict[str, torch.Tensor], delta_s: dict[str, torch.Tensor]) -> dict:
    """Signed displacement of delta_S along each kept axis of V (positive = anti-hack side), over the modules
    V covers -> {"mean_per_axis": mean over modules of mean_i V_i . delta_S,
                 "frac_of_norm": mean over modules of (mean_i V_i . delta_S) / ||delta_S||,
                 "span_share": mean over modules of ||V delta_S|| / ||delta_S|| (the share of the motion inside span V),
                 "delta_s_norm": mean over modules of ||delta_S||,
                 "per_axis": [mean over the modules having axis i of V_i . delta_S, i = 0 .. max k - 1],
                 "n_modules"}; the ratios count 0 for a module that has not moved."""
    disp, frac, share, norm = [], [], [], []
    axes: list[list[float]] = []
    with torch.no_grad():
        for name in sorted(V):
            d = delta_s.get(name)
            if d is None:
                continue
            c = V[name] @ d.detach().float()                  # [k_m]
            n = d.detach().float().norm()
            disp.append(c.mean())
            frac.append(c.mean() / n if n > EPS else torch.zeros(()))
            share.append(c.norm() / n if n > EPS else torch.zeros(()))
            norm.append(n)
            for i, ci in enumerate(c.tolist()):
                if i == len(axes):
                    axes.append([])
                axes[i].append(ci)
    return {"mean_per_axis": _mean(disp), "frac_of_norm": _mean(frac), "span_share": _mean(share),
            "delta_s_norm": _mean(norm), "per_axis": [sum(a) / len(a) for a in axes], "n_modules": len(disp)}


def random_orthonormal(k: int, r: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """[n, k, r]: n Haar-uniform V's with k orthonormal rows in R^r (QR of a Gaussian, QR's sign fixed)."""
    A = torch.randn(n, r, k, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)                                            # Q [n, r, k]
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1)).unsqueeze(-2)
    return Q.transpose(-2, -1).float()


def matched_null(V: dict[str, torch.Tensor], g: dict[str, torch.Tensor], generator: torch.Generator) -> float:
    """The hack-ward fraction of THESE gradients against freshly drawn random V's, one per module with the same
    (k_m, r) as V's: the chance level of cos_pre on the step's own gradient (mean over modules, like cos_pre).
    NB for a Haar-uniform V its expectation equals null_fraction(k, r) exactly (rotation invariance); per step it
    adds the spread a random V shows on this gradient."""
    by_shape: dict[tuple[int, int], list[str]] = {}
    for name in sorted(V):
        if g.get(name) is not None:
            by_shape.setdefault(tuple(int(x) for x in V[name].shape), []).append(name)
    vals = []
    for (k, r), names in sorted(by_shape.items()):
        Vr = random_orthonormal(k, r, len(names), generator)            # [n, k, r], drawn on the CPU (seeded)
        G = torch.stack([g[n].detach().float() for n in names])         # [n, r]
        Vr = Vr.to(G.device)
        c = torch.relu(torch.einsum("nkr,nr->nk", Vr, G))                 # [n, k]
        vals.extend(c.norm(dim=1) / G.norm(dim=1).clamp_min(EPS))
    return _mean(vals)


def _mean(xs: list[torch.Tensor]) -> float:
    return torch.stack(xs).float().mean().item() if xs else float("nan")


def project_grads(modules: dict, g_s: dict, g_t: dict, V_arm: dict, V_real: dict,
                  cfg: ProjectionConfig) -> dict[str, float]:
    """Project every module's delta_S.grad in place with the arm's V; measure with the real V.

    modules: name -> SVDLinear (delta_S.grad == g_s + g_t already set); g_s, g_t: name -> [r].
    Modules absent from V_arm are not projected (route: their delta_S_hack.grad is zeroed);
    statistics cover the modules present in V_real.
    Returns cos_pre, cos_pre_s, cos_pre_t, cos_post (means over modules) and frac_fired
    (fraction of V_arm's modules where something was removed: 0 for measure).
    """
    pre, pre_s, pre_t, post, fired = [], [], [], [], []
    for name, m in modules.items():
        g = m.delta_S.grad
        if cfg.mode == "route" and m.delta_S_hack is not None:
            # backward gave delta_S_hack the same gradient as delta_S (they enter the forward as a sum);
            # it must only ever receive the removed part.
            if m.delta_S_hack.grad is None:
                m.delta_S_hack.grad = torch.zeros_like(m.delta_S_hack)
            else:
                m.delta_S_hack.grad.zero_()
        if g is None:
            continue
        Vr = V_real.get(name)
        if Vr is not None:
            pre.append(hackward_fraction(Vr, g))
            if name in g_s:
                pre_s.append(hackward_fraction(Vr, g_s[name]))
            if name in g_t:
                pre_t.append(hackward_fraction(Vr, g_t[name]))
        Va = V_arm.get(name)
        if Va is not None:
            if cfg.mode == "measure":
                # nothing removed (the registry's meaning)
                fired.append(torch.zeros((), dtype=torch.bool, device=g.device))
            else:
                preserve = cfg.preserve_norm and cfg.mode == "erase"
                g_new, removed = erase(Va, g, cfg.one_sided, preserve)
                fired.append(removed.abs().sum() > 0)
                g.copy_(g_new.to(g.dtype))
                if cfg.mode == "route":
                    m.delta_S_hack.grad.copy_(removed.to(g.dtype))
        if Vr is not None:
            post.append(hackward_fraction(Vr, g))
    return dict(cos_pre=_mean(pre), cos_pre_s=_mean(pre_s), cos_pre_t=_mean(pre_t),
                cos_post=_mean(post), frac_fired=_mean(fired))


def project_update(modules: dict, delta: dict, V_arm: dict, V_real: dict, cfg: ProjectionConfig,
                   apply: bool) -> dict[str, float]:
    """The Adam-moment leak check/fix: measure (and optionally project) the update the optimizer applied.

    V is oriented for GRADIENTS (V g > 0: descending g moves toward the hack). An update is a descent step,
    delta ~ -lr * (preconditioned g), so a hack-ward update has V delta < 0: everything here works on
    u = -delta, the update read back as the gradient that would produce it.

    delta: name -> [r] = delta_S_after - delta_S_before. With apply, delta_S is reset to
    before - erase(-delta) (route: the removed hack-ward motion is added to delta_S_hack instead, so the
    sum is kept). Returns cos_update (hack-ward fraction of the update finally applied, real V) and, with
    apply, cos_update_pre (before projection).
    """
    pre, post = [], []
    with torch.no_grad():
        for name, d in delta.items():
            m = modules.get(name)
            if m is None:
                continue
            u = -d.float()                                    # [r] the update in gradient orientation
            Vr = V_real.get(name)
            Va = V_arm.get(name)
            if apply and Va is not None and cfg.mode != "measure":
                if Vr is not None:
                    pre.append(hackward_fraction(Vr, u))
                preserve = cfg.preserve_norm and cfg.mode == "erase"
                u_new, removed = erase(Va, u, cfg.one_sided, preserve)
                m.delta_S.add_((u - u_new).to(m.delta_S.dtype))          # = before - u_new
                if cfg.mode == "route" and m.delta_S_hack is not None:
                    m.delta_S_hack.add_((-removed).to(m.delta_S_hack.dtype))   # the hack-ward motion
                u = u_new
            elif apply and Vr is not None:
                pre.append(hackward_fraction(Vr, u))
            if Vr is not None:
                post.append(hackward_fraction(Vr, u))
    out = dict(cos_update=_mean(post))
    if apply:
        out["cos_update_pre"] = _mean(pre)
    return out


def out_of_span_share(V: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
    """||(I - V^T V) h|| / ||h||, a 0-dim tensor (0 when h = 0); V None = the empty span (share 1)."""
    h = h.float()
    inside = V.T @ (V @ h) if V is not None else torch.zeros_like(h)
    return (h - inside).norm() / h.norm().clamp_min(EPS)


def confine_route(modules: dict, V_arm: dict) -> dict[str, float]:
    """Project every delta_S_hack back onto span(V_arm) (a module without V: onto {0}) after the optimizer step.

    Returns hack_out_of_span_pre (share of ||delta_S_hack|| outside span(V) the step left, mean over modules
    with delta_S_hack != 0) and hack_out_of_span (the same after confining: 0 up to rounding).
    """
    pre, post = [], []
    with torch.no_grad():
        for name, m in modules.items():
            h = getattr(m, "delta_S_hack", None)
            if h is None or not h.detach().any():
                continue
            V = V_arm.get(name)
            pre.append(out_of_span_share(V, h))
            h.copy_((V.T @ (V @ h.float()) if V is not None else torch.zeros_like(h)).to(h.dtype))
            if h.detach().any():
                post.append(out_of_span_share(V, h))
    return dict(hack_out_of_span_pre=_mean(pre), hack_out_of_span=_mean(post))


def v_digest(V: dict[str, torch.Tensor]) -> str:
    """sha256 (16 hex) over module names and V bytes; identifies the exact subspace used."""
    h = hashlib.sha256()
    for name in sorted(V):
        t = V[name].detach().float().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]
