"""The method's arms: erase and route, plus the generic ProjectionArm every V-based arm reuses.

    ProjectionArm(v_kind, mode)
        v_kind: which V the arm PROJECTS with ("real", or a control: "random", "shuffled", "nonhack")
        mode:   "erase" | "route" | "measure" (method.projection.MODES)

All cos_* statistics are measured against the REAL V whatever v_kind is, so a control arm's
diagnostics are comparable with erase's. V comes from `method.extract.get_or_extract(ctx, kind)`
(cached by model hash, pairs hash, k, quantile, kind); tests may pass any `v_source(ctx, kind)`.
"""
from __future__ import annotations

import functools
import json
from typing import Callable

import torch

from method.hooks import Arm, ArmContext, GradBundle, UpdateBundle
from method.projection import (MODES, ProjectionConfig, confine_route, hackward_fraction, matched_null,
                               null_hackward, project_grads, project_update, v_digest, v_displacement)

REAL = "real"


def _default_v_source(ctx: ArmContext, kind: str, enforce: bool = True):
    from method.extract import get_or_extract  # lazy: extraction is only needed once an arm sets up
    return get_or_extract(ctx, kind, enforce=enforce)


def _mean_fraction(V: dict[str, torch.Tensor], g: dict[str, torch.Tensor]) -> float | None:
    """Mean over the modules V covers of the hack-ward fraction ||relu(V g)|| / ||g||."""
    vals = [hackward_fraction(V[n], g[n]).item() for n in V if n in g]
    return sum(vals) / len(vals) if vals else None


class ProjectionArm(Arm):
    wants_teacher_parts = True   # measures V's cos on correct vs hacking teacher rows (a diagnostic)

    def __init__(self, v_kind: str = REAL, mode: str = "erase",
                 v_source: Callable[[ArmContext, str], object] | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown projection mode {mode!r}; choose from {MODES}")
        self.v_kind, self.mode = v_kind, mode
        self.uses_route = mode == "route"
        # only an arm that projects is stopped by a weak real V; a measuring arm (vanilla, Rebound's diagnostics)
        # records the validation and trains (issue 20)
        self.projects = mode != "measure"
        self._v_source = v_source or functools.partial(_default_v_source, enforce=self.projects)
        self.V_real: dict[str, torch.Tensor] = {}
        self.V_arm: dict[str, torch.Tensor] = {}
        self.v_refreshes = 0
        self.refresh_every = 0
        self.v_validation: dict | None = None

    # ------------------------------------------------------------------ setup / V
    def setup(self, ctx: ArmContext) -> None:
        super().setup(ctx)
        self.proj = ProjectionConfig.from_train_config(ctx.config, self.mode)
        self.refresh_every = ctx.config.v_refresh_every
        self.on_update = ctx.config.proj_on_update
        if self.uses_route and not any(m.delta_S_hack is not None for m in ctx.policy.adapters.values()):
            raise RuntimeError("route arm needs adapters wrapped with route=True (delta_S_hack)")
        self._load_v()

    def _fit(self, vh) -> dict[str, torch.Tensor]:
        """VHack.V restricted to wrapped modules, on the adapters' device, fp32; shapes checked."""
        out = {}
        for name, V in vh.V.items():
            m = self.ctx.policy.adapters.get(name)
            if m is None:
                continue  # V for a module this run does not wrap: nothing to project
            if V.dim() != 2 or V.shape[1] != m.rank:
                raise ValueError(f"V[{name}] has shape {tuple(V.shape)}, adapter rank is {m.rank}")
            out[name] = V.to(device=m.delta_S.device, dtype=torch.float32)
        if not out:
            raise ValueError("V covers none of the wrapped modules")
        return out

    def _load_v(self) -> None:
        real = self._v_source(self.ctx, REAL)
        val = (getattr(real, "meta", None) or {}).get("validation")
        if val is not None and self.v_validation is None:   # the base V's step-1c check (get_or_extract enforces it)
            from method.extract import validation_passed

            self.v_validation = dict(frac_positive=val.get("frac_positive"), median_cos=val.get("median_cos"),
                                     n_pairs=val.get("n_pairs"), passed=validation_passed(real),
                                     allow_weak_v=self.ctx.config.allow_weak_v,
                                     null_frac_positive_p95=val.get("null_frac_positive_p95"),
                                     null_n=val.get("null_n"), enforced=self.projects)
        self.V_real = self._fit(real)
        self.V_arm = self.V_real if self.v_kind == REAL else self._fit(self._v_source(self.ctx, self.v_kind))
        self._rehash()

    def _rehash(self) -> None:
        self._hashes = {"v": v_digest(self.V_arm), "v_real": v_digest(self.V_real), "v_kind": self.v_kind}
        self.null_cos = null_hackward(self.V_real)["mean"]     # cos_pre's chance level (real V, like cos_pre)

    def artifact_hashes(self) -> dict[str, str]:
        return dict(self._hashes)

    def resolved(self) -> dict:
        """config.json: the real V's held-out validation and whether the run proceeded on a weak V."""
        return {} if self.v_validation is None else {"v_validation": dict(self.v_validation)}

    # ------------------------------------------------------------------ checkpoint state
    # harness.train.checkpoint saves state_dict() as arm.safetensors and calls load_state_dict() after setup().
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The V in use now, as flat safetensors-ready tensors: "V_real/<module>" [k, r] fp32,
        "V_arm/<module>" (only when the arm projects with a control V), "v_refreshes" (int64 scalar),
        "meta" (uint8 JSON bytes: v_kind, mode, refresh_every).

        Empty for a frozen V (v_refresh_every = 0): setup() re-derives it identically from the cache. A refreshed V
        was extracted at a past adapter state, so a resumed run must get it from the checkpoint."""
        if self.refresh_every <= 0:
            return {}
        sd = {f"V_real/{n}": V for n, V in self.V_real.items()}
        if self.V_arm is not self.V_real:   # real-V arms alias the two (safetensors refuses shared storage)
            sd.update({f"V_arm/{n}": V for n, V in self.V_arm.items()})
        meta = {"v_kind": self.v_kind, "mode": self.mode, "refresh_every": self.refresh_every}
        sd["meta"] = torch.tensor(list(json.dumps(meta, sort_keys=True).encode()), dtype=torch.uint8)
        sd["v_refreshes"] = torch.tensor(self.v_refreshes, dtype=torch.int64)
        return sd

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Restore V and the refresh counter saved by state_dict(); call after setup()."""
        if not sd:
            return
        meta = json.loads(bytes(sd["meta"].tolist()).decode())
        mine = {"v_kind": self.v_kind, "mode": self.mode, "refresh_every": self.refresh_every}
        if meta != mine:
            raise ValueError(f"arm state was saved by {meta}, this arm is {mine}")

        def take(prefix: str, now: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            V = {k[len(prefix):]: t for k, t in sd.items() if k.startswith(prefix)}
            if set(V) != set(now):
                raise ValueError(f"arm state {prefix}* covers modules {sorted(set(V) ^ set(now))[:4]} "
                                 "that differ from this run's V")
            out = {}
            for n, t in V.items():
                m = self.ctx.policy.adapters[n]
                if t.dim() != 2 or t.shape[1] != m.rank:
                    raise ValueError(f"arm state {prefix}{n} has shape {tuple(t.shape)}, adapter rank is {m.rank}")
                out[n] = t.to(device=m.delta_S.device, dtype=torch.float32)
            return out

        V_real = take("V_real/", self.V_real)
        self.V_arm = take("V_arm/", self.V_arm) if self.V_arm is not self.V_real else V_real
        self.V_real = V_real
        self.v_refreshes = int(sd["v_refreshes"])
        self._rehash()

    # ------------------------------------------------------------------ hooks
    def grad_hook(self, grads: GradBundle) -> dict[str, float]:
        stats: dict[str, float] = {}
        if self.refresh_every > 0 and grads.step > 0 and grads.step % self.refresh_every == 0:
            # Re-extract at the current adapter state (the source decides how it keys its cache).
            self._load_v()
            self.v_refreshes += 1
            stats["v_refreshes"] = float(self.v_refreshes)
        parts = {f"cos_{k}": _mean_fraction(self.V_real, g) for k, g in grads.g_t_parts.items()}
        # the chance level of cos_pre on this step's own gradient (before the projection edits it in place)
        stats["null_cos_matched"] = matched_null(self.V_real, self._pre_grads(grads), self._null_generator(grads.step))
        stats.update(project_grads(grads.modules, grads.g_s, grads.g_t, self.V_arm, self.V_real, self.proj))
        stats["null_cos"] = self.null_cos
        stats.update({k: v for k, v in parts.items() if v is not None})
        return stats

    def update_hook(self, update: UpdateBundle) -> dict[str, float]:
        apply = self.on_update and self.mode != "measure"
        stats = project_update(update.modules, update.delta, self.V_arm, self.V_real, self.proj, apply=apply)
        if self.uses_route:      # keep the quarantine inside span(V): what evaluation zeroes is only hack directions
            stats.update(confine_route(update.modules, self.V_arm))
        d = self.displacement(update.modules)
        stats.update(v_disp=d["mean_per_axis"], v_disp_frac=d["frac_of_norm"], v_disp_span=d["span_share"])
        return stats

    # ------------------------------------------------------------------ steering drift and the matched null
    def displacement(self, modules: dict | None = None) -> dict:
        """Where delta_S stands along the real V (method.projection.v_displacement; positive = anti-hack side)."""
        modules = self.ctx.policy.adapters if modules is None else modules
        return v_displacement(self.V_real, {n: m.delta_S for n, m in modules.items() if n in self.V_real})

    def summary(self) -> dict:
        """summary.json: v_displacement of the final delta_S along the real V."""
        return {"v_displacement": self.displacement()}

    @staticmethod
    def _pre_grads(grads: GradBundle) -> dict[str, torch.Tensor]:
        return {n: m.delta_S.grad for n, m in grads.modules.items() if m.delta_S.grad is not None}

    def _null_generator(self, step: int) -> torch.Generator:
        """Seeded by (run seed, step): the matched null is a deterministic metric, and a resumed run redraws it."""
        seed = self.ctx.config.seed
        return torch.Generator().manual_seed((seed * 1_000_003 + int(step) * 7919 + 17) % 2**63)


def build_erase(config=None) -> ProjectionArm:
    return ProjectionArm(REAL, "erase")


def build_route(config=None) -> ProjectionArm:
    return ProjectionArm(REAL, "route")
