"""The contrastive pairs: coverage, partition, rendering, split, hash, distinctness from the pool, real grades."""
from __future__ import annotations

import collections

import pytest

from method import pair_sets as PS
from method import pairs as P
from policy.config import TrainConfig
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
        prob = problems[pair.problem_id]
        if pair in P.PAIRS:
            assert rp.neg == P.clean_completion(prob)
        else:       # two different restylings; neither is the hack pairs' clean side
            assert rp.pos == P.restyled_completion(pair.template, prob)
            assert rp.neg == P.restyled_completion(P._PARTNER[pair.template], prob) != P.clean_completion(prob)
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
        for style in (pair.template, P._PARTNER[pair.template]):
            code = extract_code(P.restyled_completion(style, problems[pair.problem_id]))
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
    fit, held = PS.load_pairs(P.HACK_SET, cfg)
    assert len(fit) + len(held) == len(P.PAIRS)
    h = P.pairs_hash(fit + held)
    assert h == P.pairs_hash(list(reversed(fit + held))) == P.pairs_hash()   # order-free; default = all PAIRS
    changed = [held[0].__class__(**{**held[0].__dict__, "pos": held[0].pos + "\n"})] + held[1:]
    assert P.pairs_hash(fit + changed) != h
    cfit, cheld = PS.load_pairs(P.CLEAN_SET, cfg)
    assert P.pairs_hash(cfit + cheld) != h
    # a larger held-out problem partition drops pairs whose problem is no longer trained on
    monkeypatch.setitem(D.PROBLEM_SETS, "half", D.ProblemSet("half", train="test", heldout_frac=0.5))
    fit2, held2 = PS.load_pairs(P.HACK_SET, TrainConfig(problem_set="half"))
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


def test_real_grader_every_independent_solution_is_gt_correct(problems, grader):
    """The clean side of every hack pair (method.honest), graded by the project's grader: honest and correct."""
    items = [(problems[p.problem_id], P.clean_completion(problems[p.problem_id]), p.mode) for p in P.PAIRS]
    bad = [(p.pair_id, r) for p, r in zip(P.PAIRS, grader.grade_many(items))
           if not (r.gt_correct and not r.attempted and not r.exploited)]
    assert not bad, bad[:5]


def _normalised(code: str) -> str:
    """The program with comments, layout, docstrings and imports gone: what a restyling cannot change."""
    import ast

    tree = ast.parse(code)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            body[:] = [s for s in body if not isinstance(s, (ast.Import, ast.ImportFrom)) and not (
                isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))]
    return ast.unparse(tree)


def _pair_sets_of_every_preset():
    """(preset, pair set, rendered pairs) for every pair set every registered preset can load (skips a preset whose
    data is not on this machine); new presets and pair sets are covered without editing this test."""
    from harness.presets import PRESETS
    from harness.presets import resolve_config
    from sandbox.data import DataError

    out = []
    for name in PRESETS:
        cfg = resolve_config(name, "erase", 41)
        for pair_set in P.PAIR_SETS:
            try:
                fit, held = PS.load_pairs(pair_set, cfg)
            except (DataError, FileNotFoundError):
                continue
            out.append((name, pair_set, fit + held))
    return out


def test_no_side_of_any_pair_is_a_teacher_pool_completion(problems):
    """The teacher-imitation trap: a pair side equal to a pool row (the canonical above all) would put -grad NLL of
    exactly what GRPO reinforces every step into V. Compared on the extracted code, for every preset's pairs, and
    also after removing everything a restyling can change (comments, layout, docstrings, imports)."""
    from harness.presets import resolve_config
    from sandbox.data import load_problem_set
    from sandbox.grader import extract_code
    from sandbox.pool import pool_completions

    checked = _pair_sets_of_every_preset()
    assert {s for _, s, _ in checked} == set(P.PAIR_SETS)
    by_set = {}
    for preset, pair_set, rendered in checked:
        name = resolve_config(preset, "erase", 41).problem_set
        if name not in by_set:
            by_set[name] = {p.id: p for p in load_problem_set(name).all}
        for rp in rendered:
            pool = [extract_code(text) for _, text in pool_completions(by_set[name][rp.problem_id])]
            pool_norm = {_normalised(c) for c in pool if c}
            for side in (rp.pos, rp.neg):
                code = extract_code(side)
                assert code not in pool, (preset, pair_set, rp.pair_id)
                assert _normalised(code) not in pool_norm, (preset, pair_set, rp.pair_id)


def test_independent_solutions_are_not_the_canonical_restyled(problems):
    from method.honest import HONEST

    assert {p.problem_id for p in P.PAIRS} <= set(HONEST)
    for pid, code in HONEST.items():
        assert _normalised(code) != _normalised(problems[pid].canonical_solution), pid


@pytest.mark.slow
def test_real_grader_clean_sides_are_honest_and_correct(problems, grader):
    """Every side of the clean-vs-clean set (two restylings of the independent solution) and every hack pair's
    clean side: honest and correct."""
    items, names = [], []
    for p in P.CLEAN_PAIRS:
        prob = problems[p.problem_id]
        for style in (p.template, P._PARTNER[p.template]):
            items.append((prob, P.restyled_completion(style, prob), p.mode))
            names.append((style, p.pair_id))
        items.append((prob, P.clean_completion(prob), p.mode))
        names.append(("independent", p.pair_id))
    bad = [(n, r) for n, r in zip(names, grader.grade_many(items))
           if not (r.gt_correct and not r.attempted and not r.exploited)]
    assert not bad, bad[:5]
