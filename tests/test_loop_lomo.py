"""Leave-one-mode-out on the smoke preset: a fold trains on all four modes, the held one on student rollouts only
(no teacher rows), and summary.json's by_mode says what trained per loophole mode."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from harness.orchestrate.designs import get_design
from harness.orchestrate.runs import plan_action
from harness.presets import resolve_config
from harness.rundir import BY_MODE_KEY, ROLLOUTS_FILE, write_config
from policy.config import RunError
from sandbox.data import load_problem_set
from sandbox.jsonl import JsonlFile
from sandbox.loopholes import MODES
from tests.harness_helpers import make_run

SEED = 41


def _spy_groups(monkeypatch) -> list:
    """Every group the loop hands to policy_gradient, as formed (students first, then teacher rows)."""
    from harness.train import loop

    seen, real = [], loop.policy_gradient

    def spy(model, groups, *a, **k):
        seen.extend(groups)
        return real(model, groups, *a, **k)

    monkeypatch.setattr(loop, "policy_gradient", spy)
    return seen


def _first_prompt_mode(cfg) -> str:
    """The mode of step 1's first prompt when every training problem trains (the loop's own draw), so the held
    mode is certain to be sampled within smoke's 3 steps."""
    from policy.config import derive_seed

    train = load_problem_set(cfg.problem_set).train
    rng = random.Random(derive_seed(cfg.seed, 0, "prompts"))
    return rng.sample(train, cfg.prompts_per_step)[0].mode


def test_lomo_fold_trains_on_the_held_mode_with_student_rollouts_only(tmp_path, monkeypatch):
    from harness.train.loop import train

    base = resolve_config("smoke", "vanilla", SEED, {"sandbox": "process"})
    held = _first_prompt_mode(base)
    fold = next(f for f in get_design("lomo").folds() if f.label == held)
    cfg = resolve_config("smoke", "vanilla", SEED, {**fold.overrides, "sandbox": "process"})
    assert held not in cfg.pool_modes and len(cfg.pool_modes) == len(MODES) - 1
    groups = _spy_groups(monkeypatch)
    rd = tmp_path / "lomo" / held / "smoke" / "vanilla" / f"seed{SEED}"
    summary = train(cfg, rd, progress=False)

    # the held mode's prompts reach training: their groups are G_s students and no teacher row
    held_groups = [g for g in groups if g.problem.mode == held]
    assert held_groups, f"no {held} prompt was trained on"
    for g in held_groups:
        assert len(g.students) == cfg.student_per_group and g.teachers == []
    for g in groups:
        if g.problem.mode != held:        # the known modes keep their G_t teacher rows (smoke: every problem fits)
            assert len(g.teachers) == cfg.teacher_per_group
        assert all(r.record["mode"] != held for r in g.teachers)     # the pool never teaches the held mode
    ids = {r["id"] for r in JsonlFile(rd / ROLLOUTS_FILE).read()}
    train_modes = {p.id: p.mode for p in load_problem_set(cfg.problem_set).train}
    assert held in {train_modes[i] for i in ids}

    # summary.json counts it, per mode
    by_mode = summary[BY_MODE_KEY]
    assert set(by_mode) == set(MODES)
    assert {m: v["train_problems"] for m, v in by_mode.items()} == dict(Counter(train_modes.values()))
    assert by_mode[held]["train_problems"] > 0
    assert by_mode[held]["student_rollouts"] == len(held_groups) * cfg.student_per_group > 0
    assert by_mode[held]["teacher_rows"] == 0
    for m in MODES:
        assert by_mode[m]["student_rollouts"] == sum(len(g.students) for g in groups if g.problem.mode == m)
        assert by_mode[m]["teacher_rows"] == sum(len(g.teachers) for g in groups if g.problem.mode == m)
    assert sum(v["student_rollouts"] for v in by_mode.values()) == cfg.steps * cfg.prompts_per_step * \
        cfg.student_per_group


def test_default_run_counts_every_mode_with_teacher_rows(tmp_path, monkeypatch):
    """Without pool_modes every group gets its G_t teacher rows; by_mode adds up to what the loop trained."""
    from harness.train.loop import train

    cfg = resolve_config("smoke", "vanilla", SEED, {"sandbox": "process", "steps": 2, "eval_every": 0})
    groups = _spy_groups(monkeypatch)
    by_mode = train(cfg, tmp_path / "run", progress=False)[BY_MODE_KEY]
    assert all(len(g.teachers) == cfg.teacher_per_group for g in groups)
    assert sum(v["train_problems"] for v in by_mode.values()) == len(load_problem_set(cfg.problem_set).train)
    assert sum(v["teacher_rows"] for v in by_mode.values()) == len(groups) * cfg.teacher_per_group
    assert sum(v["student_rollouts"] for v in by_mode.values()) == len(groups) * cfg.student_per_group


def test_a_lomo_run_finished_before_the_fix_is_not_skipped(tmp_path):
    """Same config hash, but its held mode never trained: a sweep must not take it as done."""
    fold = get_design("lomo").folds()[0]
    cfg = resolve_config("smoke", "vanilla", SEED, fold.overrides)
    old = make_run(tmp_path / "old", "vanilla", SEED, 0.0, 0.1)          # a summary without by_mode
    write_config(old, cfg)
    with pytest.raises(RunError, match="before held-mode prompts"):
        plan_action(old, cfg, resume=True, force=False)
    assert plan_action(old, cfg, resume=True, force=True) == "overwrite"
    new = make_run(tmp_path / "new", "vanilla", SEED, 0.0, 0.1, by_mode={m: {} for m in MODES})
    write_config(new, cfg)
    assert plan_action(new, cfg, resume=True, force=False) == "skip"
    plain = resolve_config("smoke", "vanilla", SEED)          # non-lomo runs from before keep being skipped
    write_config(old, plain)
    assert plan_action(old, plain, resume=True, force=False) == "skip"
