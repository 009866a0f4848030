"""Vanilla AntiPaSTO + GRPO: no intervention; the hack-ward fractions are still measured against the
real V so the table can say whether V overlaps the live gradient at all (the "silent no-op" check)."""
from __future__ import annotations

from method.arm import REAL, ProjectionArm


def build(config=None) -> ProjectionArm:
    return ProjectionArm(REAL, "measure")
