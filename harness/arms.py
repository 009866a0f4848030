"""The arm registry: every arm name the project knows, and where its builder lives.

Builders are imported lazily ("module:function") so the loop and the CLI never
import an arm's code by name. A builder takes a TrainConfig and returns a
`method.hooks.Arm`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from policy.config import ConfigError
from sandbox.registry import lookup


@dataclass(frozen=True)
class ArmSpec:
    name: str
    role: str          # "baseline" | "method" | "control" | "ablation" | "reference"
    description: str
    builder: str       # "package.module:function"
    overrides: dict[str, Any] = field(default_factory=dict)   # config the arm is defined by (applied last)
    reference: str | None = None   # ablation / reference arms: the arm the report compares it with


MONITOR = "monitor"     # the hack-monitor reference arm (its ground-truth signal makes it an upper bound)

ARMS: dict[str, ArmSpec] = {a.name: a for a in [
    ArmSpec("vanilla", "baseline", "no intervention; cos_pre measured against the real V", "baselines.vanilla:build"),
    ArmSpec("erase", "method", "project delta_S.grad orthogonal to the real V (one-sided)", "method.arm:build_erase"),
    ArmSpec("route", "method", "removed hack-ward part trains delta_S_hack, zeroed at evaluation",
            "method.arm:build_route"),
    ArmSpec("rebound", "baseline", "advantage-level concept penalty (Wu & Tang 2026)", "baselines.rebound:build"),
    ArmSpec("random_v", "control", "erase with a random orthonormal V (matched k, modules)",
            "baselines.controls:build_random_v"),
    ArmSpec("shuffled_v", "control", "erase with V from label-shuffled pairs", "baselines.controls:build_shuffled_v"),
    ArmSpec("nonhack_v", "control", "erase with V from clean-vs-clean pairs", "baselines.controls:build_nonhack_v"),
    # ablations (not preregistered; the report keeps them apart from the verdicts)
    ArmSpec("vanilla_no_pool", "ablation", "vanilla with no teacher pool (pure student GRPO)",
            "baselines.vanilla:build", overrides={"teacher_frac": 0.0}, reference="vanilla"),
    ArmSpec("erase_no_pool", "ablation", "erase with no teacher pool: does erase act beyond blocking imitation?",
            "method.arm:build_erase", overrides={"teacher_frac": 0.0}, reference="vanilla_no_pool"),
    ArmSpec("erase_no_norm", "ablation", "erase without magnitude preservation (the spec's arm c)",
            "method.arm:build_erase", overrides={"proj_preserve_norm": False}, reference="erase"),
    ArmSpec("erase_two_sided", "ablation", "erase removing all of V g whatever its sign (the same V): one-sided "
            "erase steers gradient noise to the anti-hack side of V; this arm does not (issue 20)",
            "method.arm:build_erase", overrides={"proj_one_sided": False}, reference="erase"),
    ArmSpec("erase_two_sided_no_pool", "ablation", "two-sided erase with no teacher pool: what projecting out V does "
            "to a hack the policy finds by itself, without the one-sided gate's steering (added in issue 17 after "
            "erase_no_pool collapsed on mini v3)",
            "method.arm:build_erase", overrides={"teacher_frac": 0.0, "proj_one_sided": False},
            reference="vanilla_no_pool"),
    ArmSpec("erase_minimal", "ablation", "erase with V from minimal-contrast pairs (the same honest solution with and "
            "without an unguarded lever), so 'stub vs algorithm' is not in V (issue 20); that V fails the held-out "
            "gate on smoke and mini, so the arm trains on it anyway and the report marks it",
            "method.arm:build_erase", overrides={"v_pairs": "minimal", "allow_weak_v": True}, reference="erase"),
    ArmSpec(MONITOR, "reference", "a hack monitor screens or penalises flagged rollouts (monitor_* config); "
            "monitor_signal=exploited is a ground-truth monitor, an upper bound", "baselines.monitor:build",
            reference="vanilla"),
]}

# Names the falsification rules refer to (one place, so reports and rules agree).
BASELINE = "vanilla"
METHOD = "erase"
ADVANTAGE_BASELINE = "rebound"
CONTROLS = tuple(a.name for a in ARMS.values() if a.role == "control")
# the preregistered matrix: what the verdicts and `--design main` cover
PREREGISTERED_ARMS = tuple(a.name for a in ARMS.values() if a.role in ("baseline", "method", "control"))
ABLATIONS = tuple(a.name for a in ARMS.values() if a.role in ("ablation", "reference"))


def get_arm_spec(name: str) -> ArmSpec:
    return lookup(ARMS, name, "arm", ConfigError)


def build_arm(config):
    spec = get_arm_spec(config.arm)
    module, fn = spec.builder.split(":")
    return getattr(importlib.import_module(module), fn)(config)
