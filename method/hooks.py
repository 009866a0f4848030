"""The three places an arm may act on the one training loop (reward, gradient, update hooks).

The loop (harness/train/loop.py) knows no arm by name. Per step it calls, in order:

    rewards = arm.reward_hook(rewards, acts, info)  # [G] per group, before advantages
    ... student backward -> g_s, teacher backward -> g_t, .grad = g_s + g_t ...
    stats   = arm.grad_hook(grads)                   # between backward and optimizer.step()
    optimizer.step()
    stats  |= arm.update_hook(update)                # optional: after step, sees the applied update

`acts` is the mean-over-completion-tokens residual stream at `arm.activation_layer`
captured during the loss forward (None when the arm asks for no layer). `info` carries the environment's
labels of the group's rollouts (a hack monitor reads them; the loss never does).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class GroupInfo:
    """The environment's labels of one group's rollouts, in the order of `rewards` (students, then teachers)."""
    exploited: torch.Tensor         # [G] bool: the benchmark's hack label (passed the foolable grade, not gt-correct)
    attempted: torch.Tensor         # [G] bool: a harmful check, by execution (GradeRecord.attempted)
    attempted_known: torch.Tensor   # [G] bool: False where `attempted` is unknown (an old pool row)
    teacher: torch.Tensor           # [G] bool
    step: int                       # 1-based optimizer step
    group: int                      # index of the group within the step

    @classmethod
    def of(cls, rollouts, step: int, group: int) -> "GroupInfo":
        t = lambda xs: torch.tensor(xs, dtype=torch.bool)  # noqa: E731
        return cls(exploited=t([bool(r.exploited) for r in rollouts]),
                   attempted=t([bool(r.attempted) for r in rollouts]),
                   attempted_known=t([r.attempted is not None for r in rollouts]),
                   teacher=t([bool(r.teacher) for r in rollouts]), step=step, group=group)


@dataclass
class GradBundle:
    """Per-module gradients of one optimizer step, keyed by adapter module name.

    g_s[name], g_t[name]: [r] student / teacher halves, g_s + g_t == modules[name].delta_S.grad.
    Hooks edit `modules[name].delta_S.grad` (and `.delta_S_hack.grad` for route) in place.
    """
    modules: dict[str, torch.nn.Module]
    g_s: dict[str, torch.Tensor]
    g_t: dict[str, torch.Tensor]
    step: int
    # measured on some steps only (config.teacher_split_every), apart from training: the gradient of the teacher
    # rows that are gt-correct ("t_correct") and that hack ("t_hack"); labels with no row absent. A diagnostic: is
    # V's cos different on correct and on hacking teacher rows? Never part of .grad.
    g_t_parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


@dataclass
class UpdateBundle:
    """The update the optimizer just applied: delta[name] = delta_S_after - delta_S_before, [r]."""
    modules: dict[str, torch.nn.Module]
    delta: dict[str, torch.Tensor]
    step: int


class Arm:
    """Base arm: no intervention. Subclasses override what they need."""

    activation_layer: int | None = None   # residual-stream layer the loop should capture (Rebound)
    uses_route: bool = False              # True -> adapters carry a second delta_S_hack
    wants_teacher_parts: bool = False     # True -> GradBundle.g_t_parts on the steps config.teacher_split_every picks
    # True -> reward_hook gets the rollouts' env labels (GroupInfo). Only a monitor asks: it IS a hack detector,
    # so it reads the hack label by design; every other arm sees the labels only through the reward.
    reads_env_labels: bool = False

    def setup(self, ctx: "ArmContext") -> None:  # called once after the model is wrapped
        self.ctx = ctx

    def reward_hook(self, rewards: torch.Tensor, acts: torch.Tensor | None,
                    info: GroupInfo | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return rewards, {}

    def grad_hook(self, grads: GradBundle) -> dict[str, float]:
        return {}

    def update_hook(self, update: UpdateBundle) -> dict[str, float]:
        return {}

    def artifact_hashes(self) -> dict[str, str]:
        """Hashes of whatever V / concept files this arm used, for summary.json."""
        return {}

    def resolved(self) -> dict[str, Any]:
        """What setup decided that the config does not say (V validation, Rebound's layer), for config.json."""
        return {}

    def summary(self) -> dict[str, Any]:
        """Fields this arm adds to summary.json at the end of the run (e.g. where delta_S ended along V)."""
        return {}


@dataclass
class ArmContext:
    """What an arm may read when it sets up."""
    config: Any                      # policy.config.TrainConfig
    policy: Any                      # policy.model.Policy: model, tokenizer, adapters, base and basis hashes
    artifacts_dir: Any               # pathlib.Path holding cached V files etc.
