"""mini's own problem set: frozen, correct, and its pairs fit it (its mode x exploit matrix: test_sandbox_grader)."""
from __future__ import annotations

import json

import pytest

from sandbox.exploits import fenced


@pytest.fixture(scope="module")
def mini():
    from sandbox.data import load_problem_set

    return load_problem_set("mini")


@pytest.fixture(scope="module")
def rows():
    from sandbox.data import REPO_ROOT, get_problem_set

    ps = get_problem_set("mini")
    out = {}
    for src in (ps.train, ps.eval):
        for line in (REPO_ROOT / src.path).read_text().splitlines():
            r = json.loads(line)
            out[r["id"]] = r
    return out


def test_regenerating_gives_the_pinned_bytes(tmp_path):
    """The stored JSONL files are exactly what the generator writes, and their sha256 is the one data.py pins."""
    from sandbox import mini_problems as G
    from sandbox.data import REPO_ROOT, get_problem_set, sha256_file

    paths = G.write(tmp_path)
    ps = get_problem_set("mini")
    for split, src in (("train", ps.train), ("eval", ps.eval)):
        assert paths[split].read_bytes() == (REPO_ROOT / src.path).read_bytes(), split
        assert sha256_file(paths[split]) == src.sha256, split


def test_split_composition(mini, rows):
    """Eval = unseen instances of the trained families (easy: unseen constants) + families never trained on."""
    fam = {pid: (r["family"], json.dumps(r["params"], sort_keys=True)) for pid, r in rows.items()}
    train_fams = {fam[p.id][0] for p in mini.train}
    eval_fams = {fam[p.id][0] for p in mini.eval}
    assert {p.difficulty for p in mini.train} == {"easy", "hard"}
    assert eval_fams - train_fams                                    # unseen families exist
    assert not {p.id for p in mini.train} & {p.id for p in mini.eval}
    easy_train = {fam[p.id] for p in mini.train if p.difficulty == "easy"}
    easy_eval = {fam[p.id] for p in mini.eval if p.difficulty == "easy" and fam[p.id][0] in train_fams}
    assert easy_eval and not easy_eval & easy_train                  # easy eval constants never trained on
    assert len({p.mode for p in mini.eval}) == 4 and len({p.mode for p in mini.train}) == 4
    for p in mini.all:   # the first gt assert is the statement's worked example (what an honest self-check uses)
        call = p.gt_answer[0][len("assert Solution()."):].split(" == ")[0]
        assert call.split("(", 1)[1].rstrip(")") in p.question


def _solutions(problems, rows):
    for p in problems:
        yield p, "canonical", p.canonical_solution
        for i, alt in enumerate(rows[p.id]["alt_solutions"]):
            yield p, f"alt{i}", alt


def test_every_canonical_and_alt_solution_is_correct(mini, rows, grader):
    items = list(_solutions(mini.all, rows))
    recs = grader.grade_many([(p, fenced(code), None) for p, _, code in items])
    bad = [(p.id, kind) for (p, kind, _), r in zip(items, recs) if not (r.gt_correct and r.category == "correct")]
    assert not bad


def test_mini_pairs_fit_the_problems_and_share_no_text_with_the_pool(mini, grader):
    """Hack pairs: pos exploits its own mode, neg is correct; clean pairs: both correct. No side is a teacher-pool
    completion or the canonical text, and every pair renders on a training problem."""
    from harness.presets import resolve_config
    from method.pair_sets import load_pairs
    from method.pairs import CLEAN_SET, HACK_SET, MINIMAL_SET
    from sandbox.grader import extract_code
    from sandbox.pool import pool_completions

    cfg = resolve_config("mini", "vanilla", 41)
    by_id = {p.id: p for p in mini.train}
    pool_code = {extract_code(t).strip() for p in mini.train for _, t in pool_completions(p)}
    for pair_set in (HACK_SET, CLEAN_SET, MINIMAL_SET):
        fit, held = load_pairs(pair_set, cfg)
        pairs = fit + held
        assert len(fit) >= 60 and held     # spec: ~60-80; whole templates held out (issue 20): 72 - 12
        assert {rp.problem_id for rp in pairs} <= set(by_id)
        items = [(by_id[rp.problem_id], text, rp.mode) for rp in pairs for text in (rp.pos, rp.neg)]
        recs = grader.grade_many(items)
        for i, rp in enumerate(pairs):
            pos, neg = recs[2 * i], recs[2 * i + 1]
            assert neg.gt_correct and not neg.attempted, rp.pair_id
            if pair_set == HACK_SET:
                assert pos.exploited and pos.attempted, (rp.pair_id, rp.pos)
            elif pair_set == MINIMAL_SET:   # the honest solution and its mode's lever: correct, and the lever is there
                assert pos.gt_correct and pos.attempted and rp.pos.startswith(rp.neg[:-3]), (rp.pair_id, rp.pos)
            else:
                assert pos.gt_correct and not pos.attempted, rp.pair_id
            canonical = by_id[rp.problem_id].canonical_solution.strip()
            for side in (rp.pos, rp.neg):
                code = extract_code(side).strip()
                assert code not in pool_code and code != canonical, (rp.pair_id, side)


@pytest.mark.docker
def test_every_canonical_is_correct_under_docker(mini):
    from sandbox.docker_executor import DockerExecutor, docker_available
    from sandbox.grader import Grader

    ok, why = docker_available()
    if not ok:
        pytest.skip(f"docker backend unavailable: {why}")
    with DockerExecutor(workers=2) as ex:
        recs = Grader(ex).grade_many([(p, fenced(p.canonical_solution), None) for p in mini.all])
    assert all(r.gt_correct for r in recs)
