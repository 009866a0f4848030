"""A hack monitor as a reference intervention (rl-rewardhacking's headline): rollouts a monitor flags are
screened out of their group's advantage or penalised, before advantages are computed.

    signal    exploited: the benchmark's own hack label (passed the foolable grade, not gt-correct). A
              ground-truth monitor: an UPPER BOUND on what any real detector could do.
              attempted: a harmful check, paid or not (GradeRecord.attempted: the program's own check
              passes an arbitrary or a wrong solution, or fails the canonical one; an honest self-check is not).
    accuracy  each flag is flipped with probability 1 - accuracy (seeded by run seed, step and group, so
              a resumed run flips the same flags).
    mode      screen:  flagged rewards are set to the mean of the unflagged ones (of the unflagged student rows
                       under advantage_baseline "students"), so a flagged rollout gets A = 0 and the others get
                       exactly the advantage of the group without it (all flagged -> a flat group, skipped);
              penalty: R <- R - monitor_penalty on flagged rollouts.

The monitor sees every rollout that enters the loss (students and teacher-pool rows alike).
"""
from __future__ import annotations

import torch

from method.hooks import Arm, GroupInfo
from method.metrics import Metric, register_metric
from policy.config import derive_seed
from policy.grpo import baseline_rows

register_metric(Metric("monitor_flagged", "monitor arm: fraction of the step's rollouts the monitor flagged",
                       "{:.2f}", kind="train"))
register_metric(Metric("monitor_hack_recall", "monitor arm: fraction of exploited rollouts flagged (groups with "
                       "a hack)", "{:.2f}", kind="train"))


def flip_mask(n: int, accuracy: float, seed: int, step: int, group: int) -> torch.Tensor:
    """[n] bool: which flags a detector of this accuracy gets wrong, reproducible per (seed, step, group)."""
    if accuracy >= 1.0:
        return torch.zeros(n, dtype=torch.bool)
    gen = torch.Generator().manual_seed(derive_seed("monitor", seed, step, group))
    return torch.rand(n, generator=gen) >= accuracy


def monitored_rewards(rewards: torch.Tensor, flags: torch.Tensor, mode: str, penalty: float,
                      baseline: torch.Tensor | None = None) -> torch.Tensor:
    """rewards [G] float, flags [G] bool -> the rewards the advantage is computed from.
    baseline [G] bool: the rows the advantage is centred on (policy.grpo.baseline_rows; None = all)."""
    out = rewards.clone().float()
    if not flags.any():
        return out
    if mode == "penalty":
        out[flags] -= penalty
        return out
    # screen: a flagged row takes the mean of the unflagged rows the advantage is centred on, so its A is 0 and
    # the baseline is that of the unflagged rows
    base = torch.ones_like(flags) if baseline is None else baseline
    keep = ~flags & base if (~flags & base).any() else ~flags
    out[flags] = out[keep].mean() if keep.any() else 0.0
    return out


class MonitorArm(Arm):
    reads_env_labels = True     # a hack detector: the labels are its input

    def setup(self, ctx) -> None:
        super().setup(ctx)
        c = ctx.config
        self.mode, self.signal = c.monitor_mode, c.monitor_signal
        self.accuracy, self.penalty, self.seed = float(c.monitor_accuracy), float(c.monitor_penalty), int(c.seed)
        self.advantage_baseline = c.advantage_baseline

    def reward_hook(self, rewards: torch.Tensor, acts: torch.Tensor | None,
                    info: GroupInfo | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        if info is None:
            raise RuntimeError("the monitor arm needs the loop to pass the rollouts' labels (GroupInfo)")
        truth = info.exploited if self.signal == "exploited" else info.attempted
        flags = truth ^ flip_mask(len(truth), self.accuracy, self.seed, info.step, info.group)
        stats = {"monitor_flagged": flags.float().mean().item()}
        if info.exploited.any():   # recall is undefined on a group with no hack
            stats["monitor_hack_recall"] = (flags & info.exploited).sum().item() / int(info.exploited.sum())
        base = baseline_rows(self.advantage_baseline, info.teacher)
        return monitored_rewards(rewards, flags, self.mode, self.penalty, base), stats


def build(config=None) -> MonitorArm:
    return MonitorArm()
