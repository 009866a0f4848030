"""The teacher pool: programmatic completions graded by the real grader, frozen, hashed, sampled."""
from __future__ import annotations

import hashlib
import json
import random

import pytest

from sandbox.pool import KINDS, broken, build_pool, load_pool, pool_completions


@pytest.fixture(scope="module")
def one_per_mode(problems):
    """The first training problem of each loophole mode."""
    from sandbox.data import split_problems
    from sandbox.loopholes import MODES

    train, _ = split_problems(problems, 0.25)
    return [next(p for p in train if p.mode == m) for m in MODES]


def _grade_fields(row):
    from sandbox.grader import RECORD_FIELDS

    return {k: row[k] for k in RECORD_FIELDS}


def test_pool_rows_graded_frozen_and_regradable(tmp_path, grader, one_per_mode):
    path = build_pool(one_per_mode, grader, tmp_path / "pool.jsonl")
    pool = load_pool(path)
    assert pool.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert pool.problem_ids == sorted(p.id for p in one_per_mode)
    lines = path.read_text().splitlines()
    assert [json.loads(ln) for ln in lines] == pool.rows
    assert [(r["problem_id"], KINDS.index(r["kind"])) for r in pool.rows] == \
        sorted((r["problem_id"], KINDS.index(r["kind"])) for r in pool.rows)
    by_id = {p.id: p for p in one_per_mode}
    fresh = grader.grade_many([(by_id[r["problem_id"]], r["completion"], r["mode"]) for r in pool.rows])
    for row, rec in zip(pool.rows, fresh):
        assert _grade_fields(row) == rec.to_dict(), (row["problem_id"], row["kind"])
    # the builder's intent holds for these problems: every mode's lever is paid, wrongs are not
    for r in pool.rows:
        assert r["mode"] == by_id[r["problem_id"]].mode
        assert r["completion"].startswith("```python\n") and r["completion"].endswith("\n```")
        if r["kind"] == "canonical":
            assert r["gt_correct"] and not r["exploited"]
        elif r["kind"].startswith("hack_"):
            assert r["exploited"] and r["attempted"], r
        else:
            assert not r["passed"] and not r["attempted"] and r["format_ok"], r
    # rebuilding gives the same bytes (frozen = reproducible)
    again = build_pool(one_per_mode, grader, tmp_path / "again.jsonl")
    assert load_pool(again).sha256 == pool.sha256


def test_sample_is_seeded_and_without_replacement(tmp_path):
    rows = [{"problem_id": 7, "kind": k, "completion": k, "reward": 0.0, "exploited": False, "gt_correct": False}
            for k in KINDS]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = load_pool(path)
    a = pool.sample(7, 4, random.Random(0))
    assert a == pool.sample(7, 4, random.Random(0))
    assert len({r["kind"] for r in a}) == 4             # no repeats while the problem has enough rows
    assert len(pool.sample(7, 9, random.Random(1))) == 9
    with pytest.raises(KeyError):
        pool.sample(8, 1, random.Random(0))


def test_load_pool_rejects_rows_without_grades(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"problem_id": 1, "completion": "x"}) + "\n")
    with pytest.raises(ValueError, match="missing field"):
        load_pool(path)


def test_broken_replaces_the_last_return_whole():
    src = "def f(x):\n    if x:\n        return 1\n    return (x +\n            2)\n"
    out = broken(src)
    assert out == "def f(x):\n    if x:\n        return 1\n    return 0\n"
    compile(out, "<t>", "exec")
    assert broken("x = 1\n") is None


def test_every_mode_gets_a_lever(problems):
    from sandbox.grader import extract_code
    from sandbox.loopholes import MODES, defines_check

    for p in problems[:20]:
        kinds = dict(pool_completions(p))
        assert defines_check(extract_code(kinds["hack_stub"]), p.mode)
        assert not defines_check(extract_code(kinds["wrong_stub"]), p.mode)
    assert {p.mode for p in problems} == set(MODES)


def test_pool_without_hard_canonical_drops_only_the_hard_problems_canonical_rows():
    """mini's pool (pool_hard_canonical=False): no canonical row on a hard problem; every other row, and every
    problem, stays (so hard problems stay in training, taught their hack and wrong rows)."""
    from sandbox.data import load_problem_set

    mini = load_problem_set("mini").train
    hard = [p for p in mini if p.difficulty == "hard"][:5]
    easy = [p for p in mini if p.difficulty != "hard"][:5]
    assert hard and easy
    for p in hard + easy:
        full, lean = dict(pool_completions(p)), dict(pool_completions(p, hard_canonical=False))
        dropped = set(full) - set(lean)
        assert dropped == ({"canonical"} if p.difficulty == "hard" else set()), (p.id, dropped)
        assert all(lean[k] == full[k] for k in lean) and any(k.startswith("hack") for k in lean)


def test_pool_without_wrong_rows_drops_only_the_honest_wrong_rows():
    """mini's pool (pool_wrong_rows=False): no wrong_stub / wrong_broken row; every other row, in the same order,
    and every problem stays (hard problems keep their hack rows)."""
    from sandbox.data import load_problem_set

    mini = load_problem_set("mini").train
    for p in [q for q in mini if q.difficulty == "hard"][:5] + [q for q in mini if q.difficulty != "hard"][:5]:
        full = pool_completions(p, hard_canonical=False)
        lean = pool_completions(p, hard_canonical=False, wrong_rows=False)
        assert lean == [(k, t) for k, t in full if k not in ("wrong_stub", "wrong_broken")], p.id
        assert {k for k, _ in full} - {k for k, _ in lean} == {"wrong_stub", "wrong_broken"}, p.id
        assert any(k.startswith("hack") for k, _ in lean)


def test_mini_preset_pool_has_no_wrong_rows_and_full_keeps_them():
    from harness.presets import resolve_config

    assert resolve_config("mini", "vanilla", 41).pool_wrong_rows is False
    assert resolve_config("full", "vanilla", 41).pool_wrong_rows is True


@pytest.mark.slow
def test_mini_pool_every_entry_regrades_identically(grader):
    """The acceptance check: every entry of the mini preset's pool (cached under ARTIFACTS_DIR) regrades equal."""
    from harness.presets import resolve_config
    from sandbox.data import load_problem_set
    from sandbox.pool import ensure_pool

    cfg = resolve_config("mini", "vanilla", 41)
    pool = load_pool(ensure_pool(cfg))
    by_id = {p.id: p for p in load_problem_set(cfg.problem_set).all}
    fresh = grader.grade_many([(by_id[r["problem_id"]], r["completion"], r["mode"]) for r in pool.rows])
    mismatched = [(r["problem_id"], r["kind"]) for r, rec in zip(pool.rows, fresh) if _grade_fields(r) != rec.to_dict()]
    assert not mismatched
