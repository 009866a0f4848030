"""Comparable runs only: what falsify / report check before they put two runs side by side (issue 20).

Two complete runs of one preset are comparable when
    hashes.model, hashes.data   agree across every run;
    hashes.pool                 agrees across runs whose arms set the same POOL_KEYS in their defining overrides (a
                                no-pool ablation has no pool);
    hashes.v_real               agrees across runs that have one and whose arms set the same V_KEYS (the real V every
                                cos_* is measured against; erase_minimal's comes from other pairs);
    hashes.v                    agrees across the seeds of one arm, unless its V kind is seeded (random, shuffled:
                                method.extract.SEEDED_KINDS);
    config.json                 agrees field by field (a field a run's config.json lacks counts at TrainConfig's
                                default), apart from identity (preset, arm, seed), the arm's own overrides
                                (harness.arms.ArmSpec.overrides), the loop's metadata and EXECUTION_FIELDS.
A run without config.json (hand-made test runs) is checked on its hashes only.

`problems(records)` lists every disagreement as one line naming the arm, the seed and the field, against the
first run (in arm order, then seed) that has the field.
"""
from __future__ import annotations

import json
from dataclasses import MISSING, fields
from typing import Any, Iterable

from harness.rundir import RunRecord, read_config_json
from policy.config import RunError

IDENTITY_FIELDS = ("preset", "arm", "seed")
METADATA_KEYS = ("config_hash", "hashes", "resolved", "environment", "grader")
# how a run was executed, not what it computed (allow_weak_v decides whether a run on a weak V starts at all; the V
# it trained with is compared by hash, and the report lists every run that trained on a weak V)
# shared_prefix: the per-row and shared-prefix forwards give the same numbers (tests/test_shared_prefix.py)
EXECUTION_FIELDS = ("sandbox", "grade_workers", "cpu_threads", "checkpoint_every", "log_every", "allow_weak_v",
                    "shared_prefix")
GLOBAL_HASHES = ("model", "data")
# the config fields an arm's overrides may set that change an artifact (so its hash may differ from other arms')
POOL_KEYS = ("teacher_frac", "teacher_pool", "pool_modes")
V_KEYS = ("v_pairs", "pair_modes", "extract_k", "noise_quantile", "heldout_pairs_frac", "extract_nll")
ALLOW_MIXED_HINT = "pass --allow-mixed to compare them anyway (the report then says so)"


class MixedRunsError(RunError):
    """Runs that are not comparable were about to be compared."""


def _norm(x: Any) -> Any:
    """JSON-normal form (tuples -> lists), so a default and a value read back from config.json compare equal."""
    return json.loads(json.dumps(x, sort_keys=True, default=list))


def _defaults() -> dict[str, Any]:
    from policy.config import TrainConfig

    out = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = _norm(f.default)
        elif f.default_factory is not MISSING:   # type: ignore[misc]
            out[f.name] = _norm(f.default_factory())   # type: ignore[misc]
    return out


def _compared_config(rec: RunRecord, defaults: dict[str, Any]) -> dict[str, Any] | None:
    from harness.arms import ARMS

    raw = read_config_json(rec.path)
    if raw is None:
        return None
    own = set(ARMS[rec.arm].overrides) if rec.arm in ARMS else set()
    skip = set(IDENTITY_FIELDS) | set(METADATA_KEYS) | set(EXECUTION_FIELDS) | own
    merged = {k: v for k, v in defaults.items() if k not in skip}
    merged.update({k: _norm(v) for k, v in raw.items() if k not in skip})
    return merged


def _order(records: Iterable[RunRecord]) -> list[RunRecord]:
    from harness.arms import ARMS

    names = list(ARMS)
    return sorted(records, key=lambda r: (names.index(r.arm) if r.arm in names else len(names), r.arm, r.seed))


def _who(r: RunRecord) -> str:
    return f"{r.arm} seed {r.seed}"


def problems(records: Iterable[RunRecord]) -> list[str]:
    """One line per disagreement among the complete runs (empty: comparable)."""
    from harness.arms import ARMS
    from method.extract import SEEDED_KINDS

    runs = _order(r for r in records if r.complete)
    out: list[str] = []

    def check(group: list[RunRecord], field: str, value_of, what: str) -> None:
        ref = next((r for r in group if value_of(r) is not None), None)
        if ref is None:
            return
        for r in group:
            v = value_of(r)
            if v is not None and v != value_of(ref):
                out.append(f"{_who(r)} has {what} {field} = {v!r}, {_who(ref)} has {value_of(ref)!r}")

    def h(key: str):
        return lambda r: (r.summary.get("hashes") or {}).get(key)

    for key in GLOBAL_HASHES:
        check(runs, key, h(key), "hash")
    def by_overrides(keys: tuple[str, ...]) -> list[list[RunRecord]]:
        groups: dict[str, list[RunRecord]] = {}
        for r in runs:
            own = ARMS[r.arm].overrides if r.arm in ARMS else {}
            groups.setdefault(json.dumps(_norm({k: v for k, v in own.items() if k in keys}), sort_keys=True),
                              []).append(r)
        return list(groups.values())

    for group in by_overrides(POOL_KEYS):
        check(group, "pool", h("pool"), "hash")
    for group in by_overrides(V_KEYS):
        check(group, "v_real", h("v_real"), "hash")
    for arm in dict.fromkeys(r.arm for r in runs):
        group = [r for r in runs if r.arm == arm]
        if not any((r.summary.get("hashes") or {}).get("v_kind") in SEEDED_KINDS for r in group):
            check(group, "v", h("v"), "hash")
    defaults = _defaults()
    cfgs = {id(r): _compared_config(r, defaults) for r in runs}
    with_cfg = [r for r in runs if cfgs[id(r)] is not None]
    for key in sorted({k for r in with_cfg for k in cfgs[id(r)]}):
        check(with_cfg, key, lambda r, k=key: cfgs[id(r)].get(k), "config")
    return out


def require_comparable(records: Iterable[RunRecord], allow_mixed: bool, where: str = "") -> list[str]:
    """The problems; raises MixedRunsError (one line: the first problem) unless allow_mixed."""
    found = problems(records)
    if found and not allow_mixed:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise MixedRunsError(f"runs{' under ' + where if where else ''} are not comparable: {found[0]}{more}; "
                             f"{ALLOW_MIXED_HINT}")
    return found
