"""Negative controls for erase: the same projection with a V that should NOT know what hacking is.

Projecting out any rank-k subspace and renormalising perturbs the update, so a drop in hack rate could
be generic regularisation rather than selective removal. erase must beat all three:

    random_v    random orthonormal V, same modules and k_m as the real V after its noise floor (seeded)
    shuffled_v  the real extraction with hack/clean labels swapped at random per pair (seeded)
    nonhack_v   the real extraction on clean-vs-clean pairs (two honest completions of the same prompt)

Each uses method.arm.ProjectionArm with its V kind (method.extract.KINDS); cos_* are still measured
against the real V, and each V file's metadata names the kind that produced it.
"""
from __future__ import annotations

from method.arm import ProjectionArm

# arm name (harness.arms.ARMS) -> V kind (method.extract.KINDS)
CONTROL_KINDS = {"random_v": "random", "shuffled_v": "shuffled", "nonhack_v": "nonhack"}


def _build(arm: str) -> ProjectionArm:
    return ProjectionArm(CONTROL_KINDS[arm], "erase")


def build_random_v(config=None) -> ProjectionArm:
    return _build("random_v")


def build_shuffled_v(config=None) -> ProjectionArm:
    return _build("shuffled_v")


def build_nonhack_v(config=None) -> ProjectionArm:
    return _build("nonhack_v")
