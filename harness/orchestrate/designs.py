"""The design registry: which runs `harness sweep --design NAME` plans, and where they live.

A design is a list of folds; a fold is (runs sub-root, arms, config overrides). Each fold's runs use the
ordinary layout under <out>/<subroot>: <preset>/<arm>/seed<N>/.

    main       the preregistered matrix (every preregistered arm); what `harness falsify` rules on
    ablations  the ablation and reference arms (harness.arms.ABLATIONS), next to the main runs
    lomo       leave-one-mode-out: per held loophole mode, erase / random_v / vanilla with V extracted
               from the three known modes' pairs and a teacher pool of the known modes only, training on
               all four modes (the held mode's prompts with student rollouts only, no teacher rows);
               under <out>/lomo/<held mode>/ so it never mixes with the main runs. A fold's V may fail the
               held-out validation (fewer pairs, one mode short): the fold trains anyway and its config and
               the report say so (allow_weak_v), since a V that does not validate is itself the fold's result
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.arms import ABLATIONS, BASELINE, METHOD, PREREGISTERED_ARMS
from policy.config import ConfigError
from sandbox.registry import lookup

LOMO_ROOT = "lomo"
LOMO_RANDOM = "random_v"
LOMO_ARMS = (METHOD, LOMO_RANDOM, BASELINE)


@dataclass(frozen=True)
class Fold:
    subroot: str                      # "" = <out> itself
    arms: tuple[str, ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""                   # lomo: the held mode

    def root(self, out: str | Path) -> Path:
        return Path(out) / self.subroot if self.subroot else Path(out)


@dataclass(frozen=True)
class Design:
    name: str
    description: str
    folds: Callable[[], list[Fold]]


def _lomo_folds() -> list[Fold]:
    from sandbox.loopholes import MODES

    out = []
    for held in MODES:
        known = tuple(m for m in MODES if m != held)
        out.append(Fold(f"{LOMO_ROOT}/{held}", LOMO_ARMS,
                        {"pair_modes": known, "pool_modes": known, "allow_weak_v": True}, held))
    return out


DESIGNS: dict[str, Design] = {d.name: d for d in [
    Design("main", "the preregistered matrix: every preregistered arm x seed",
           lambda: [Fold("", PREREGISTERED_ARMS)]),
    Design("ablations", "ablation and reference arms (no pool, no norm preservation, two-sided erase, hack monitor)",
           lambda: [Fold("", ABLATIONS)]),
    Design("lomo", "leave-one-mode-out: V and teacher pool from 3 known modes, suppression measured on the held one",
           _lomo_folds),
]}
DEFAULT_DESIGN = "main"


def get_design(name: str) -> Design:
    return lookup(DESIGNS, name, "design", ConfigError)


def sweep_command(design: str, preset: str, runs: str | Path, seeds: list[int], arms: list[str] | None = None) -> str:
    """The `harness sweep` command that completes `design` (a sweep skips what is done)."""
    cmd = f"harness sweep --design {design} --preset {preset} --out {runs} --seeds {','.join(map(str, sorted(seeds)))}"
    return cmd + (f" --arm {','.join(arms)}" if arms else "")
