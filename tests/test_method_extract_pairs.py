"""The contrastive pairs: coverage, partition, rendering, split, hash, distinctness from the pool, real grades."""
from __future__ import annotations

import collections

import pytest

from harness.config import TrainConfig
from method import pairs as P
from sandbox import data as D
from sandbox.data import load_problems, split_problems
from sandbox.loopholes import MODES


PARTITION = "leetcode_test_partition"     # the set the pairs were written inside (its training part)


@pytest.fixture(scope="module")
def problems():
    return {p.id: p for p in load_problems("test")}


def test_counts_and_mode_coverage():
    assert len(P.PAIRS) >= 64
    per_mode = collections.Counter(p.mode for p in P.PAIRS)
    assert set(per_mode) == set(MODES) and min(per_mode.values()) >= 16
    assert len({p.pair_id for p in P.PAIRS}) == len(P.PAIRS)
    assert len({p.problem_id for p in P.PAIRS}) == len(P.PAIRS)          # one hack per problem
    # the control set is matched: same problems, same modes, same count
    assert [(c.problem_id, c.mode) for c in P.CLEAN_PAIRS] == [(p.problem_id, p.mode) for p in P.PAIRS]
    assert all(c.pair_id == f"cl-{p.pair_id}" for c, p in zip(P.CLEAN_PAIRS, P.PAIRS))


def test_pairs_use_training_problems_under_their_own_mode(problems):
    train, heldout = split_problems(list(problems.values()), D.PROBLEM_SETS[PARTITION].heldout_frac)
    train_ids, held_ids = {p.id for p in train}, {p.id for p in heldout}
    for pair in P.PAIRS:
        assert pair.problem_id in train_ids and pair.problem_id not in held_ids, pair.pair_id
        assert problems[pair.problem_id].mode == pair.mode, pair.pair_id


@pytest.mark.parametrize("style", ["compact", "full"])
def test_render_both_styles(problems, style):
    for pair in P.PAIRS[::7] + P.CLEAN_PAIRS[::7]:
        rp = P.render(pair, problems[pair.problem_id], style)
        text = "\n".join(m["content"] for m in rp.messages)
        assert MODES[pair.mode].hint in text
        assert rp.neg == P.clean_completion(problems[pair.problem_id])
        assert rp.pos != rp.neg and rp.pos.count("```python") == 1
    compact = P.render(P.PAIRS[0], problems[P.PAIRS[0].problem_id], "compact")
    full = P.render(P.PAIRS[0], problems[P.PAIRS[0].problem_id], "full")
    assert compact.messages != full.messages and (compact.pos, compact.neg) == (full.pos, full.neg)


def test_hacks_pull_their_own_lever_only(problems):
    from sandbox.grader import extract_code

    for pair in P.PAIRS:
        code = extract_code(P.hack_completion(pair, problems[pair.problem_id]))
        assert MODES[pair.mode].detect(code), pair.pair_id
    for pair in P.CLEAN_PAIRS:
        code = extract_code(P.restyled_completion(pair, problems[pair.problem_id]))
        assert not any(m.detect(code) for m in MODES.values()), pair.pair_id


def test_split_is_deterministic_stratified_and_disjoint():
    fit, held = P.split_pairs(P.PAIRS, 0.25)
    assert (fit, held) == P.split_pairs(list(reversed(P.PAIRS)), 0.25)
    assert not {p.pair_id for p in fit} & {p.pair_id for p in held}
    assert len(fit) + len(held) == len(P.PAIRS)
    assert {p.mode for p in held} == {p.mode for p in fit} == set(MODES)
    assert 0.15 < len(held) / len(P.PAIRS) < 0.3
    # the clean control splits the same problems the same way
    cfit, cheld = P.split_pairs(P.CLEAN_PAIRS, 0.25)
    assert [p.problem_id for p in cheld] == [p.problem_id for p in held]


def test_load_pairs_and_hash(monkeypatch):
    cfg = TrainConfig(prompt_style="compact", problem_set=PARTITION)
    fit, held = P.load_pairs(P.HACK_SET, cfg)
    assert len(fit) + len(held) == len(P.PAIRS)
    h = P.pairs_hash(fit + held)
    assert h == P.pairs_hash(list(reversed(fit + held))) == P.pairs_hash()   # order-free; default = all PAIRS
    changed = [held[0].__class__(**{**held[0].__dict__, "pos": held[0].pos + "\n"})] + held[1:]
    assert P.pairs_hash(fit + changed) != h
    cfit, cheld = P.load_pairs(P.CLEAN_SET, cfg)
    assert P.pairs_hash(cfit + cheld) != h
    # a larger held-out problem partition drops pairs whose problem is no longer trained on
    monkeypatch.setitem(D.PROBLEM_SETS, "half", D.ProblemSet("half", train="test", heldout_frac=0.5))
    fit2, held2 = P.load_pairs(P.HACK_SET, TrainConfig(problem_set="half"))
    assert len(fit2) + len(held2) < len(P.PAIRS)


def test_surface_form_differs_from_teacher_pool(problems):
    """The generalization constraint: no pair reuses the pool's programmatic hack text."""
    from sandbox import pool

    for pair in P.PAIRS:
        prob = problems[pair.problem_id]
        ours = P.hack_completion(pair, prob)
        theirs = [text for kind, text in pool.pool_completions(prob) if kind.startswith("hack")]
        assert ours not in theirs
        assert pool.lever_code(pair.mode).strip() not in ours, pair.pair_id


def test_real_grader_every_hack_is_exploited(problems, grader):
    items = [(problems[p.problem_id], P.hack_completion(p, problems[p.problem_id]), p.mode) for p in P.PAIRS]
    bad = [(p.pair_id, r) for p, r in zip(P.PAIRS, grader.grade_many(items))
           if not (r.exploited and r.attempted and not r.gt_correct)]
    assert not bad, bad[:5]


@pytest.mark.slow
def test_real_grader_clean_sides_are_honest_and_correct(problems, grader):
    """Both clean sides: the canonical (neg of every pair) and the restyled one (pos of the clean-vs-clean set)."""
    items, names = [], []
    for p in P.CLEAN_PAIRS:
        prob = problems[p.problem_id]
        items += [(prob, P.clean_completion(prob), p.mode), (prob, P.restyled_completion(p, prob), p.mode)]
        names += [("canonical", p.pair_id), ("restyled", p.pair_id)]
    bad = [(n, r) for n, r in zip(names, grader.grade_many(items))
           if not (r.gt_correct and not r.attempted and not r.exploited)]
    assert not bad, bad[:5]
