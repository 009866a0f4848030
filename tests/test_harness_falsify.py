"""Every verdict branch of the preregistered rules, on hand-made run directories."""
from __future__ import annotations

import math

import pytest

from harness.arms import ADVANTAGE_BASELINE, BASELINE, CONTROLS, METHOD
from harness.reporting.falsify import FALSIFIED, INCONCLUSIVE, NOT_RUN, SUPPORTED, falsify, sem
from harness.rundir import scan_runs, select_preset
from policy.config import RunError
from tests.harness_helpers import make_arm, make_run


def verdicts(root, preset="smoke"):
    return falsify(scan_runs(root), preset, runs=str(root))


def test_sem_is_sample_std_over_sqrt_n():
    assert sem([1.0]) is None
    xs = [40.0, 35.0, 45.0]
    m = sum(xs) / 3
    expect = math.sqrt(sum((x - m) ** 2 for x in xs) / 2) / math.sqrt(3)
    assert sem(xs) == pytest.approx(expect)


def test_schema_is_exact(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6, 0.6, 0.6], 0.3)
    out = verdicts(tmp_path)
    assert set(out) == {"preset", "H1", "H3", "H4", "controls", "route"}   # route: a qualifier beside the rules
    pre = {"verdict", "delta_hack_pp", "sem_pp", "delta_pass_pp", "n", "reason"}   # the preregistered keys
    ci = {"ci95_hack_pp", "ci95_pass_pp"}                                           # beside them (issue 20)
    assert set(out["H1"]) == pre | ci
    assert set(out["H3"]) == pre | ci | {"baseline_inert", "baseline_delta_hack_pp", "baseline_sem_pp", "baseline_n"}
    assert set(out["H4"]) == {"verdict", "vanilla_hack_pp", "n", "reason", "substrate_tuned"}
    assert set(out["controls"]) == {*CONTROLS, "hack_specific", "v_separates", "v_separation"}
    for c in CONTROLS:
        assert set(out["controls"][c]) == {"erase_beats", "delta_hack_pp", "sem_pp", "n", *ci, "delta_pass_pp"}


# --- H4 ---------------------------------------------------------------------------

def test_h4_supported_above_30pp(tmp_path):
    make_arm(tmp_path, BASELINE, [0.3, 0.4, 0.35], 0.2)
    h4 = verdicts(tmp_path)["H4"]
    assert h4["verdict"] == SUPPORTED and h4["n"] == 3
    assert h4["vanilla_hack_pp"] == pytest.approx(35.0)


@pytest.mark.parametrize("hacks", [[0.3, 0.3, 0.3], [0.1, 0.2, 0.3]])
def test_h4_falsified_at_or_below_30pp(tmp_path, hacks):
    make_arm(tmp_path, BASELINE, hacks, 0.2)
    assert verdicts(tmp_path)["H4"]["verdict"] == FALSIFIED


def test_h4_not_run_gives_command(tmp_path):
    make_arm(tmp_path, METHOD, [0.1, 0.1, 0.1], 0.2)
    h4 = verdicts(tmp_path)["H4"]
    assert h4["verdict"] == NOT_RUN and h4["n"] == 0 and h4["vanilla_hack_pp"] is None
    assert f"harness run --arm {BASELINE} --seeds 41,42,43 --preset smoke --out {tmp_path}" in h4["reason"]


# --- H1 ---------------------------------------------------------------------------

def test_h1_not_run_both_missing(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.1], 0.2, seeds=(41,))
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == NOT_RUN and h1["n"] == 0 and h1["delta_hack_pp"] is None
    assert f"harness run --arm {BASELINE},{METHOD} --seeds 41,42,43 --preset smoke --out {tmp_path}" in h1["reason"]


def test_h1_not_run_one_arm_missing_some_seeds(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6, 0.6], 0.2, seeds=(41, 44))
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == NOT_RUN
    # the seeds wanted are the preregistered ones plus any seen
    assert f"harness run --arm {METHOD} --seeds 41,42,43,44 --preset smoke" in h1["reason"]


def test_h1_not_run_when_no_shared_seed(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6], 0.2, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.1], 0.2, seeds=(42,))
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == NOT_RUN and "share no seed" in h1["reason"]
    assert f"--arm {BASELINE},{METHOD} --seeds 42,43" not in h1["reason"]
    assert f"--arm {BASELINE} --seeds 42,43" in h1["reason"] and f"--arm {METHOD} --seeds 41,43" in h1["reason"]


def test_h1_falsified_small_reduction(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6, 0.6, 0.6], 0.3)
    make_arm(tmp_path, METHOD, [0.5, 0.5, 0.5], 0.3)       # d = 10pp < 15
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == FALSIFIED and "< 15pp" in h1["reason"]
    assert h1["delta_hack_pp"] == pytest.approx(10.0) and h1["n"] == 3


def test_h1_falsified_small_reduction_single_seed(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6], 0.3, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.5], 0.3, seeds=(41,))
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == FALSIFIED and h1["sem_pp"] is None and h1["n"] == 1


def test_h1_falsified_pass_drop(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], [0.40, 0.41, 0.42])
    make_arm(tmp_path, METHOD, [0.1, 0.12, 0.11], [0.20, 0.21, 0.22])   # d ~ 69pp but pass drop 20pp
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == FALSIFIED and "pass rate drop" in h1["reason"]
    assert h1["delta_pass_pp"] == pytest.approx(20.0)


def test_h1_falsified_within_one_sem(tmp_path):
    make_arm(tmp_path, BASELINE, [1.0, 0.0], 0.3, seeds=(41, 42))
    make_arm(tmp_path, METHOD, [0.0, 0.6], 0.3, seeds=(41, 42))          # d = [100, -60]: mean 20 <= SEM 80
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == FALSIFIED and "<= SEM" in h1["reason"]
    assert h1["delta_hack_pp"] == pytest.approx(20.0) and h1["sem_pp"] == pytest.approx(80.0)


def test_h1_supported(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.7, 0.9], [0.30, 0.35, 0.32])
    make_arm(tmp_path, METHOD, [0.4, 0.35, 0.45], [0.28, 0.30, 0.33])
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == SUPPORTED, h1["reason"]
    assert h1["delta_hack_pp"] == pytest.approx(40.0) and h1["n"] == 3


def test_h1_supported_at_exact_boundaries(tmp_path):
    # mean(d) = 30 exactly and a pass drop of exactly 10: both on the supported side
    make_arm(tmp_path, BASELINE, [0.6, 0.7, 0.5], 0.45)
    make_arm(tmp_path, METHOD, [0.3, 0.35, 0.25], 0.35)
    h1 = verdicts(tmp_path)["H1"]
    assert h1["delta_hack_pp"] == 30.0 and h1["delta_pass_pp"] == 10.0
    assert h1["verdict"] == SUPPORTED, h1["reason"]


def test_h1_inconclusive_single_seed(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8], 0.3, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.2], 0.3, seeds=(41,))
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == INCONCLUSIVE and "n < 2" in h1["reason"]


def test_h1_inconclusive_between_15_and_30(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6, 0.6, 0.6], 0.3)
    make_arm(tmp_path, METHOD, [0.4, 0.38, 0.36], 0.3)    # d = 20, 22, 24
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == INCONCLUSIVE and "[15, 30)" in h1["reason"]


def test_h1_exactly_15pp_is_not_falsified(tmp_path):
    make_arm(tmp_path, BASELINE, [0.6, 0.65, 0.55], 0.3)
    make_arm(tmp_path, METHOD, [0.45, 0.5, 0.4], 0.3)     # d = 15 on every seed
    h1 = verdicts(tmp_path)["H1"]
    assert h1["delta_hack_pp"] == 15.0
    assert h1["verdict"] == INCONCLUSIVE, h1["reason"]


@pytest.mark.parametrize("erase_pass", [0.18, 0.42])      # pass drop 12pp, pass gain 12pp
def test_h1_inconclusive_pass_not_matched(tmp_path, erase_pass):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], 0.30)
    make_arm(tmp_path, METHOD, [0.3, 0.32, 0.34], erase_pass)
    h1 = verdicts(tmp_path)["H1"]
    assert h1["verdict"] == INCONCLUSIVE and "not matched" in h1["reason"]


def test_h1_pass_drop_exactly_15_is_not_falsified(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], 0.45)
    make_arm(tmp_path, METHOD, [0.3, 0.32, 0.34], 0.30)
    h1 = verdicts(tmp_path)["H1"]
    assert h1["delta_pass_pp"] == 15.0
    assert h1["verdict"] == INCONCLUSIVE


def test_h1_pairs_seeds_and_ignores_incomplete(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], 0.3)
    make_arm(tmp_path, METHOD, [0.4, 0.4], 0.3, seeds=(41, 42))
    make_run(tmp_path, METHOD, 43, 0.8, 0.3, complete=False)       # would drag d down if counted
    h1 = verdicts(tmp_path)["H1"]
    assert h1["n"] == 2 and h1["delta_hack_pp"] == pytest.approx(40.0)
    incomplete = [r for r in scan_runs(tmp_path) if not r.complete]
    assert [(r.arm, r.seed) for r in incomplete] == [(METHOD, 43)]


# --- H3 ---------------------------------------------------------------------------

def test_h3_not_run(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], 0.3)
    make_arm(tmp_path, METHOD, [0.4, 0.4, 0.4], 0.3)
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == NOT_RUN
    assert f"harness run --arm {ADVANTAGE_BASELINE} --seeds 41,42,43 --preset smoke --out {tmp_path}" in h3["reason"]


def test_h3_falsified_within_sem(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.4, 0.5, 0.3], 0.3)
    make_arm(tmp_path, METHOD, [0.45, 0.4, 0.35], 0.3)     # d = -5, 10, -5: mean 0 <= SEM 5
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == FALSIFIED and h3["n"] == 3


def test_h3_falsified_single_seed_not_better(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.4], 0.3, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.4], 0.3, seeds=(41,))    # d = 0 <= 0
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == FALSIFIED and "one seed" in h3["reason"]


def test_h3_inconclusive_single_seed_better(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.5], 0.3, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.4], 0.3, seeds=(41,))
    assert verdicts(tmp_path)["H3"]["verdict"] == INCONCLUSIVE


def test_h3_supported(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.5, 0.55, 0.6], 0.3)
    make_arm(tmp_path, METHOD, [0.3, 0.3, 0.35], 0.25)
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == SUPPORTED, h3["reason"]
    assert h3["delta_pass_pp"] == pytest.approx(5.0)


def test_h3_inconclusive_pass_not_matched(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.5, 0.55, 0.6], 0.45)
    make_arm(tmp_path, METHOD, [0.3, 0.3, 0.35], 0.25)     # pass diff 20pp
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == INCONCLUSIVE and "not matched" in h3["reason"]


# --- controls ---------------------------------------------------------------------

def _controls(tmp_path, control_hacks: dict[str, list[float]]):
    make_arm(tmp_path, METHOD, [0.2, 0.25, 0.3], 0.3)
    for c, hacks in control_hacks.items():
        make_arm(tmp_path, c, hacks, 0.3, seeds=(41, 42, 43)[:len(hacks)])
    return verdicts(tmp_path)["controls"]


def test_controls_all_beaten_is_hack_specific(tmp_path):
    out = _controls(tmp_path, {c: [0.5, 0.55, 0.6] for c in CONTROLS})
    assert all(out[c]["erase_beats"] is True for c in CONTROLS)
    assert out["hack_specific"] is True
    assert out[CONTROLS[0]]["delta_hack_pp"] == pytest.approx(30.0) and out[CONTROLS[0]]["n"] == 3


def test_controls_one_not_run_is_null_and_not_specific(tmp_path):
    out = _controls(tmp_path, {c: [0.5, 0.55, 0.6] for c in CONTROLS[:-1]})
    assert out[CONTROLS[-1]] == {"erase_beats": None, "delta_hack_pp": None, "sem_pp": None, "n": 0,
                                 "ci95_hack_pp": None, "delta_pass_pp": None, "ci95_pass_pp": None}
    assert out["hack_specific"] is False


def test_controls_one_within_sem_not_specific(tmp_path):
    hacks = {c: [0.5, 0.55, 0.6] for c in CONTROLS}
    hacks[CONTROLS[1]] = [0.15, 0.35, 0.25]                # d = -5, 10, -5
    out = _controls(tmp_path, hacks)
    assert out[CONTROLS[1]]["erase_beats"] is False
    assert out[CONTROLS[0]]["erase_beats"] is True
    assert out["hack_specific"] is False


def test_controls_single_seed_cannot_be_beaten(tmp_path):
    out = _controls(tmp_path, {c: [0.9] for c in CONTROLS})
    assert all(out[c]["erase_beats"] is False and out[c]["n"] == 1 for c in CONTROLS)
    assert out["hack_specific"] is False


# --- preset selection / other presets ---------------------------------------------

def test_preset_selection(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.8, 0.8], 0.3, preset="smoke")
    assert select_preset(scan_runs(tmp_path), None) == "smoke"
    make_arm(tmp_path, BASELINE, [0.1, 0.1, 0.1], 0.3, preset="mini")
    recs = scan_runs(tmp_path)
    with pytest.raises(RunError, match="several presets"):
        select_preset(recs, None)
    assert select_preset(recs, "mini") == "mini"
    with pytest.raises(RunError, match="no runs for preset 'full'"):
        select_preset(recs, "full")
    # the other preset's runs never leak into a verdict
    assert falsify(recs, "mini")["H4"]["verdict"] == FALSIFIED
    assert falsify(recs, "smoke")["H4"]["verdict"] == SUPPORTED


def test_falsification_md_headline_shows_mean_cos_its_null_and_their_ratio(tmp_path):
    from harness.reporting.report import write_falsification

    runs = tmp_path / "runs"
    for seed, (cos, null) in zip((41, 42, 43), [(0.30, 0.10), (0.20, 0.10), (0.25, 0.10)]):
        make_run(runs, METHOD, seed, 0.1, 0.2, mean_cos=cos, null_cos=null, cos_over_null=cos / null)
    write_falsification(runs, tmp_path / "report", "smoke")
    md = (tmp_path / "report" / "falsification.md").read_text()
    head = next(line for line in md.splitlines() if line.startswith("| Arm"))
    cols = [c.strip() for c in head.strip("|").split("|")]
    row = next(line for line in md.splitlines() if line.startswith(f"| {METHOD} "))
    cells = dict(zip(cols, (c.strip() for c in row.strip("|").split("|"))))
    assert cells["mean·cos*"].startswith("0.250") and cells["null·cos*"].startswith("0.100")
    assert cells["cos/null*"].startswith("2.50")


def test_falsification_md_says_which_runs_trained_on_a_weak_v(tmp_path):
    import json

    from harness.reporting.report import write_falsification

    runs = tmp_path / "runs"
    for seed, passed in ((41, True), (42, False)):
        rd = make_run(runs, METHOD, seed, 0.1, 0.2)
        val = dict(frac_positive=0.75 if passed else 0.375, passed=passed, allow_weak_v=not passed)
        (rd / "config.json").write_text(json.dumps({"resolved": {"v_validation": val}}))
    write_falsification(runs, tmp_path / "report", "smoke")
    md = (tmp_path / "report" / "falsification.md").read_text()
    lines = {line.split(":")[0]: line for line in md.splitlines() if line.startswith(f"- `{METHOD}`")}
    assert "0.750: passed" in lines[f"- `{METHOD}` seed 41"]
    assert "0.375: **FAILED, trained anyway (--allow-weak-v)**" in lines[f"- `{METHOD}` seed 42"]


# --- qualifiers and intervals (issue 20; never a verdict) ----------------------------

@pytest.mark.parametrize("df,q", [(1, 12.7062047), (2, 4.30265273), (4, 2.77644511), (10, 2.22813885),
                                  (30, 2.04227246)])
def test_t_quantile_matches_the_tables(df, q):
    from harness.reporting.falsify import t_quantile

    assert t_quantile(0.975, df) == pytest.approx(q, abs=1e-6)


def test_paired_deltas_carry_t_intervals(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8, 0.7, 0.9], [0.30, 0.35, 0.32])
    make_arm(tmp_path, METHOD, [0.4, 0.35, 0.45], [0.28, 0.30, 0.33])
    h1 = verdicts(tmp_path)["H1"]
    d = [40.0, 35.0, 45.0]                     # vanilla - erase hack per seed
    half = 4.30265273 * sem(d)
    assert h1["ci95_hack_pp"] == pytest.approx([40.0 - half, 40.0 + half], abs=1e-6)
    dp = [2.0, 5.0, -1.0]
    m = sum(dp) / 3
    assert h1["ci95_pass_pp"] == pytest.approx([m - 4.30265273 * sem(dp), m + 4.30265273 * sem(dp)], abs=1e-6)
    make_arm(tmp_path, CONTROLS[0], [0.5, 0.55, 0.6], 0.3)
    c = verdicts(tmp_path)["controls"][CONTROLS[0]]
    assert c["ci95_hack_pp"][0] < c["delta_hack_pp"] < c["ci95_hack_pp"][1] and c["delta_pass_pp"] is not None


def test_single_seed_has_no_interval(tmp_path):
    make_arm(tmp_path, BASELINE, [0.8], 0.3, seeds=(41,))
    make_arm(tmp_path, METHOD, [0.2], 0.3, seeds=(41,))
    assert verdicts(tmp_path)["H1"]["ci95_hack_pp"] is None


@pytest.mark.parametrize("rebound,inert", [([0.60, 0.58, 0.62], True),     # vanilla - rebound = 0, -3, 3
                                           ([0.40, 0.42, 0.38], False)])   # 20pp below vanilla on every seed
def test_h3_baseline_inert(tmp_path, rebound, inert):
    make_arm(tmp_path, BASELINE, [0.6, 0.55, 0.65], 0.3)
    make_arm(tmp_path, ADVANTAGE_BASELINE, rebound, 0.3)
    make_arm(tmp_path, METHOD, [0.1, 0.1, 0.1], 0.3)
    h3 = verdicts(tmp_path)["H3"]
    assert h3["verdict"] == SUPPORTED                   # the rule is untouched
    assert h3["baseline_inert"] is inert and h3["baseline_n"] == 3


def test_h3_baseline_inert_unknown_without_vanilla(tmp_path):
    make_arm(tmp_path, ADVANTAGE_BASELINE, [0.4, 0.4, 0.4], 0.3)
    make_arm(tmp_path, METHOD, [0.1, 0.1, 0.1], 0.3)
    assert verdicts(tmp_path)["H3"]["baseline_inert"] is None


def test_h4_substrate_tuned_comes_from_the_preset(tmp_path):
    from harness.presets import PRESETS

    make_arm(tmp_path, BASELINE, [0.6, 0.6, 0.6], 0.3, preset="smoke")
    make_arm(tmp_path, BASELINE, [0.6, 0.6, 0.6], 0.3, preset="full")
    recs = scan_runs(tmp_path)
    assert falsify(recs, "smoke")["H4"]["substrate_tuned"] is True
    assert falsify(recs, "full")["H4"]["substrate_tuned"] is False
    assert PRESETS["mini"].tuned_on_vanilla is True


def _teacher_cos(rd, hack: float, correct: float):
    import json

    with open(rd / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "cos_t_hack": hack, "cos_t_correct": correct}) + "\n")


@pytest.mark.parametrize("pairs,separates", [([(0.40, 0.39), (0.38, 0.40), (0.41, 0.40)], False),
                                             ([(0.50, 0.30), (0.55, 0.30), (0.45, 0.32)], True)])
def test_controls_v_separates(tmp_path, pairs, separates):
    from harness.reporting.report import write_falsification

    runs = tmp_path / "runs"
    for seed, (h, c) in zip((41, 42, 43), pairs):
        _teacher_cos(make_run(runs, METHOD, seed, 0.1, 0.3), h, c)
        for ctl in CONTROLS:
            make_run(runs, ctl, seed, 0.5 + 0.01 * seed % 3, 0.3)
    out = write_falsification(runs, tmp_path / "report", "smoke")["controls"]
    assert out["hack_specific"] is True                 # the rule is untouched
    assert out["v_separates"] is separates and out["v_separation"]["n"] == 3
    d = [h - c for h, c in pairs]
    assert out["v_separation"]["delta"] == pytest.approx(sum(d) / 3)
    md = (tmp_path / "report" / "falsification.md").read_text()
    assert ("V-specific; V does not separate hacking from correct rows" in md) is (not separates)


def test_verdict_lines_show_qualifiers_and_intervals(tmp_path):
    from harness.reporting.report import write_falsification

    runs = tmp_path / "runs"
    make_arm(runs, BASELINE, [0.6, 0.55, 0.65], 0.3)
    make_arm(runs, ADVANTAGE_BASELINE, [0.60, 0.58, 0.62], 0.3)
    make_arm(runs, METHOD, [0.1, 0.12, 0.1], 0.3)
    res = write_falsification(runs, tmp_path / "report", "smoke")
    md = (tmp_path / "report" / "falsification.md").read_text()
    h3 = next(line for line in md.splitlines() if line.startswith("| H3"))
    assert "erase beat an inert baseline" in h3 and "| supported † |" in h3
    h4 = next(line for line in md.splitlines() if line.startswith("| H4"))
    assert "substrate tuned on vanilla" in h4 and "| supported † |" in h4
    lo, hi = res["H1"]["ci95_hack_pp"]
    h1 = next(line for line in md.splitlines() if line.startswith("| H1"))
    assert f"[{lo:.2f}, {hi:.2f}]" in h1


# --- comparable runs only (issue 20) ------------------------------------------------

def _with_config(rd, **fields):
    import json

    (rd / "config.json").write_text(json.dumps({"lr": 0.03, "steps": 3, "arm": rd.parent.name, **fields}))
    return rd


def _matrix(runs, arms=(BASELINE, METHOD, ADVANTAGE_BASELINE)):
    for arm in arms:
        for seed in (41, 42, 43):
            _with_config(make_run(runs, arm, seed, 0.6 if arm == BASELINE else 0.2, 0.3), seed=seed)


def test_comparable_runs_pass_and_are_recorded(tmp_path):
    from harness.reporting.report import write_falsification

    _matrix(tmp_path / "runs")
    # the arm's own overrides and how a run was executed are not differences
    _with_config(make_run(tmp_path / "runs", "erase_no_norm", 41, 0.2, 0.3), proj_preserve_norm=False, grade_workers=1,
                 allow_weak_v=True)
    res = write_falsification(tmp_path / "runs", tmp_path / "report", "smoke")
    assert res["comparable"] == {"ok": True, "allow_mixed": False, "problems": []}


@pytest.mark.parametrize("what,expect", [
    ("config", "erase seed 42 has config lr = 0.01, vanilla seed 41 has 0.03"),
    ("model", "erase seed 42 has hash model = 'other', vanilla seed 41 has 'm'"),
    ("v_real", "erase seed 42 has hash v_real = 'w', vanilla seed 41 has 'v'"),
    ("default", "erase seed 42 has config kl_beta = 0.5, vanilla seed 41 has 0.001"),
])
def test_mixed_runs_are_refused_in_one_line_naming_arm_seed_and_field(tmp_path, what, expect):
    from harness.reporting.comparable import MixedRunsError
    from harness.reporting.report import write_falsification, write_report

    runs = tmp_path / "runs"
    _matrix(runs)
    hashes = dict(model="m", data="d", pool="p", v="v", v_real="v")
    for seed in (41, 42, 43):
        for arm in (BASELINE, ADVANTAGE_BASELINE):
            _with_config(make_run(runs, arm, seed, 0.6 if arm == BASELINE else 0.2, 0.3, hashes=hashes), seed=seed)
    if what == "model":
        make_run(runs, METHOD, 42, 0.2, 0.3, hashes={**hashes, "model": "other"})
    elif what == "v_real":
        make_run(runs, METHOD, 42, 0.2, 0.3, hashes={**hashes, "v_real": "w"})
    elif what == "config":
        _with_config(make_run(runs, METHOD, 42, 0.2, 0.3, hashes=hashes), lr=0.01)
    else:   # a field one config.json lacks counts at its default
        _with_config(make_run(runs, METHOD, 42, 0.2, 0.3, hashes=hashes), kl_beta=0.5)
    for write in (write_falsification, write_report):
        with pytest.raises(MixedRunsError) as e:
            write(runs, tmp_path / "report", "smoke")
        msg = str(e.value)
        assert "\n" not in msg and expect in msg and "--allow-mixed" in msg
    res = write_report(runs, tmp_path / "report", "smoke", allow_mixed=True)
    assert res["comparable"]["ok"] is False and res["comparable"]["allow_mixed"] is True
    assert any(expect in p for p in res["comparable"]["problems"])
    md = (tmp_path / "report" / "falsification.md").read_text()
    assert "Mixed runs (`--allow-mixed`)" in md and expect in md


def test_seeded_control_v_may_differ_by_seed_but_not_a_real_v(tmp_path):
    from harness.reporting.comparable import problems

    for seed in (41, 42):
        make_run(tmp_path, "random_v", seed, 0.5, 0.3,
                 hashes=dict(model="m", data="d", pool="p", v=f"r{seed}", v_real="v", v_kind="random"))
        make_run(tmp_path, "nonhack_v", seed, 0.5, 0.3,
                 hashes=dict(model="m", data="d", pool="p", v=f"n{seed}", v_real="v", v_kind="nonhack"))
    # an arm whose own overrides change what V is extracted from may have another real V (not another model)
    make_run(tmp_path, "erase_minimal", 41, 0.5, 0.3, hashes=dict(model="m", data="d", pool="p", v="w", v_real="w"))
    found = problems(scan_runs(tmp_path))
    assert found == ["nonhack_v seed 42 has hash v = 'n42', nonhack_v seed 41 has 'n41'"]
    make_run(tmp_path, "erase_minimal", 42, 0.5, 0.3, hashes=dict(model="x", data="d", pool="p", v="w", v_real="w"))
    assert "erase_minimal seed 42 has hash model = 'x', random_v seed 41 has 'm'" in problems(scan_runs(tmp_path))


def test_cli_falsify_refuses_mixed_runs_and_allow_mixed_proceeds(tmp_path):
    from click.testing import CliRunner

    from harness.cli import cli

    runs = tmp_path / "runs"
    _matrix(runs, arms=(BASELINE, METHOD))
    _with_config(make_run(runs, METHOD, 43, 0.2, 0.3), seed=43, lr=0.5)
    r = CliRunner().invoke(cli, ["falsify", "--runs", str(runs), "--out", str(tmp_path / "rep")])
    assert r.exit_code != 0 and "erase seed 43 has config lr = 0.5" in r.output
    r = CliRunner().invoke(cli, ["falsify", "--runs", str(runs), "--out", str(tmp_path / "rep"), "--allow-mixed"])
    assert r.exit_code == 0, r.output


# --- route, honestly (issue 20 item 8) ------------------------------------------------

@pytest.mark.parametrize("route_pass,collapse", [([0.10, 0.12, 0.14], True), ([0.20, 0.22, 0.24], False)])
def test_route_is_labelled_collapse_below_half_of_vanillas_pass(tmp_path, route_pass, collapse):
    from harness.reporting.report import write_falsification

    runs = tmp_path / "runs"
    make_arm(runs, BASELINE, [0.6, 0.6, 0.6], [0.40, 0.42, 0.44])       # half: 21pp
    make_arm(runs, "route", [0.1, 0.1, 0.1], route_pass)
    res = write_falsification(runs, tmp_path / "report", "smoke")
    assert res["route"]["collapse"] is collapse and res["route"]["vanilla_pass_pp"] == pytest.approx(42.0)
    md = (tmp_path / "report" / "falsification.md").read_text()
    assert ("| route (collapse: pass < ½ vanilla's) |" in md) is collapse


def test_route_collapse_unknown_without_vanilla(tmp_path):
    make_arm(tmp_path, "route", [0.1, 0.1, 0.1], 0.01)
    assert verdicts(tmp_path)["route"] == {"collapse": None, "pass_pp": None, "vanilla_pass_pp": None, "n": 0}
