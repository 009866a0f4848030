"""The preset registry: `smoke` (tests/CI), `mini` (CPU substrate), `full` (GPU, the real experiment).

A preset is only a set of overrides on `TrainConfig`'s defaults, which follow the
spec and its amendments (Qwen3-4B, lr 7e-5, betas (0.9, 0.99), KL beta 1e-3, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.config import ConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


register(Preset(
    name="smoke",
    description="seconds; a tiny random Qwen3-architecture model built on the fly; for tests and CI",
    overrides=dict(
        model="builtin:smoke", dtype="float32", prompt_style="compact", max_prompt_tokens=256,
        # max_new_tokens 64: the short teacher rows (levers, stubs) fit; only rows that fit are drawn
        steps=3, prompts_per_step=2, group_size=4, teacher_frac=0.5, max_new_tokens=64,
        lr=1e-2, warmup_frac=0.0, eval_every=2, eval_problems=4, checkpoint_every=2,
        extract_k=4, grade_workers=2,
        rebound_layer=0,   # 2 blocks (depths 0.5, 1.0): none in the spec's 60-75% band; 0.5 is the nearer
    ),
))

register(Preset(
    name="mini",
    description="CPU substrate: a ~0.75M-param Qwen3-architecture model the project builds (SFT warm start), on which vanilla GRPO hacks",
    overrides=dict(
        model="builtin:mini", dtype="float32", prompt_style="compact", max_prompt_tokens=384,
        steps=60, prompts_per_step=4, group_size=8, teacher_frac=0.5, max_new_tokens=160,
        lr=5e-2, warmup_frac=0.05, eval_every=20, eval_problems=30, eval_samples=2, checkpoint_every=10,
        grade_workers=2,
        rebound_layer=0,   # 2 blocks (depths 0.5, 1.0): none in the spec's 60-75% band; 0.5 is the nearer
    ),
))

register(Preset(
    name="full",
    description="GPU: Qwen3-4B, 200 steps, bf16, gradient checkpointing (spec + amendments)",
    overrides=dict(
        model="Qwen/Qwen3-4B", dtype="auto", grad_checkpointing=True, prompt_style="full",
        steps=200, prompts_per_step=8, group_size=8, max_new_tokens=1024,
        lr=7e-5, kl_beta=1e-3, eval_every=25, eval_problems=0, eval_samples=8, checkpoint_every=25,
        grade_workers=8,
    ),
))


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}") from None
