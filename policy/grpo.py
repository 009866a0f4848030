"""GRPO loss math (Dr.GRPO, single inner step), in the spirit of simple_GRPO's GRPO_step.

For one prompt's group of G rollouts with rewards R [G]:

    A_i        = R_i - mean(R)                          # Dr.GRPO: no division by std(R)
                 (advantage_baseline "students": R_i - mean over the group's student rows)
    ratio_it   = exp(logp_it - logp_it.detach())        # == 1: one inner step, so old policy == policy
    k3_it      = exp(ref_it - logp_it) - (ref_it - logp_it) - 1      # unbiased, >= 0 KL(policy || ref)
    loss       = sum_it mask_it * (-A_i * ratio_it + beta * k3_it) / NORM

NORM is a constant (P * G * max_new_tokens), not the number of tokens: Dr.GRPO's fix for the
length bias of per-sequence mean. Groups whose rewards have no spread are skipped (A == 0).
"""
from __future__ import annotations

import math

import torch

FLAT_EPS = 1e-4   # simple_GRPO: max(R) - min(R) < 1e-4 -> no advantage signal


# What each group's advantage is centred on. "group": the mean of all G rows (the spec; teacher rows included).
# "students": the mean of the group's student rows only, so G_t teacher rows at a high reward do not push every
# student row down (a group with no student rows, or no teacher rows, is the same under both).
ADVANTAGE_BASELINES = ("group", "students")


def baseline_rows(kind: str, teacher: torch.Tensor) -> torch.Tensor | None:
    """kind (ADVANTAGE_BASELINES), teacher [G] bool -> the rows the advantage is centred on ([G] bool; None = all)."""
    return ~teacher if kind == "students" else None


def group_advantages(rewards: torch.Tensor, baseline_rows: torch.Tensor | None = None) -> torch.Tensor:
    """rewards [G] -> advantages [G]; Dr.GRPO unbiased (mean-centred, no std division).
    baseline_rows [G] bool: centre on the mean of these rows only (None or none set: all rows)."""
    if baseline_rows is None or not bool(baseline_rows.any()):
        return rewards - rewards.mean()
    return rewards - rewards[baseline_rows].mean()


def is_flat(rewards: torch.Tensor, eps: float = FLAT_EPS) -> bool:
    """True when the group carries no advantage signal. NaN rewards are NOT flat (they must reach the NaN check)."""
    spread = (rewards.max() - rewards.min()).item()
    return spread < eps


def lr_at(step: int, total_steps: int, base_lr: float, warmup_frac: float) -> float:
    """Learning rate for 0-based step `step`: linear warmup then cosine decay to 0 at `total_steps`."""
    warmup = int(round(warmup_frac * total_steps))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def loss_normaliser(prompts_per_step: int, group_size: int, max_new_tokens: int) -> float:
    return float(prompts_per_step * group_size * max_new_tokens)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || ref) on policy samples; >= 0, unbiased."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def dr_grpo_loss(logp: torch.Tensor, ref_logp: torch.Tensor | None, adv: torch.Tensor, mask: torch.Tensor,
                 beta: float, norm: float) -> torch.Tensor:
    """logp, ref_logp, mask [B, T]; adv [B]; -> scalar loss (sum over tokens / constant)."""
    ratio = torch.exp(logp - logp.detach())                 # == 1, carries d logp
    per_tok = -adv.unsqueeze(1) * ratio
    if beta and ref_logp is not None:
        per_tok = per_tok + beta * k3_kl(logp, ref_logp)
    return (per_tok * mask).sum() / norm
