"""diagnostics.json / the Diagnostics section on hand-made run dirs: every number checked against the inputs."""
from __future__ import annotations

import json

import pytest
import torch

from harness.arms import ADVANTAGE_BASELINE, BASELINE, METHOD
from harness.reporting.diagnostics import diagnostics, mode_rates, pass_vacuous, thirds
from harness.reporting.falsify import sem
from harness.reporting.report import write_report
from harness.rundir import EVAL_RECORDS_FILE, scan_runs
from sandbox.loopholes import MODES as _MODES

MODES = tuple(_MODES)
from tests.harness_helpers import make_run

HELD = MODES[1]


def _records(path, step, rows):
    """rows: (mode, exploited, attempted, gt_correct[, defines_check]) per generation of the evaluation at `step`
    (without the fifth item, a record as runs wrote it before the field existed)."""
    with open(path / EVAL_RECORDS_FILE, "a") as f:
        for i, (mode, e, a, c, *d) in enumerate(rows):
            f.write(json.dumps({"step": step, "problem_id": i, "sample": 0, "mode": mode, "category": "x",
                                "exploited": e, "attempted": a, "gt_correct": c,
                                **({"defines_check": d[0]} if d else {})}) + "\n")


def _metrics(path, rows):
    with open(path / "metrics.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def test_mode_rates():
    rows = [dict(exploited=e, attempted=a, gt_correct=c) for e, a, c in
            [(True, True, False), (False, True, False), (False, False, True), (False, False, False)]]
    r = mode_rates(rows)
    assert r == {"hack_pp": 25.0, "loose_hack_pp": 50.0, "pass_pp": 25.0, "channel_pp": None,   # records before
                 "p_exploit_given_attempt": 0.5, "n": 4}                                       # the field
    assert mode_rates(rows[2:])["p_exploit_given_attempt"] is None      # no attempt: undefined, not 0
    # channel: writing the mode's channel at all; a use that fails (the last row) counts, and is no hack
    rows = [dict(r, defines_check=d) for r, d in zip(rows, (True, True, False, True))]
    assert mode_rates(rows)["channel_pp"] == 75.0 and mode_rates(rows)["hack_pp"] == 25.0


def test_per_mode_uses_the_final_evaluation_and_means_over_seeds(tmp_path):
    root = tmp_path / "runs"
    a = make_run(root, METHOD, 41, 0.5, 0.0)
    b = make_run(root, METHOD, 42, 0.5, 0.0)
    _records(a, 0, [(MODES[0], True, True, False)] * 2)           # step-0 (base) eval: ignored
    _records(a, 3, [(MODES[0], True, True, False), (MODES[0], False, False, True)])
    _records(b, 3, [(MODES[0], False, True, False), (MODES[0], False, False, False), (MODES[1], True, True, False)])
    pm = diagnostics(root, "smoke")["per_mode"][METHOD]
    m0 = pm[MODES[0]]
    assert m0["per_seed"]["41"]["hack_pp"] == 50.0 and m0["per_seed"]["42"]["hack_pp"] == 0.0
    assert m0["hack_pp"] == 25.0 and m0["loose_hack_pp"] == 50.0 and m0["pass_pp"] == 25.0
    assert m0["p_exploit_given_attempt"] == pytest.approx(0.5)     # mean of 1/1 and 0/1
    assert m0["n"] == 4 and m0["n_seeds"] == 2
    assert pm[MODES[1]]["n_seeds"] == 1 and pm[MODES[1]]["hack_pp"] == 100.0


def test_unparsable_late_counts_only_the_last_third_and_text_that_does_not_compile():
    from harness.reporting.diagnostics import unparsable_late

    ok, garbage = "```python\nclass Solution:\n    pass\n```", "```python\nclass Solution:\n    def f(self,ears;NN 3x\n```"
    rows = [{"step": s, "completion": garbage} for s in (1, 2, 3, 4)]           # early garbage: not counted
    rows += [{"step": 5, "completion": ok}, {"step": 5, "completion": "no code at all"},
             {"step": 6, "completion": garbage}, {"step": 6, "completion": ok}]
    assert unparsable_late(rows) == pytest.approx(50.0)                         # steps 5, 6 of T = 6
    assert unparsable_late([]) is None


def test_rotation_thirds():
    rows = [{"step": s, "hack_rate_s": v} for s, v in enumerate([0.0, 0.0, 0.2, 0.4, 0.6, 1.0], start=1)]
    mid, late = thirds(rows)     # T = 6: mid = steps 3, 4; late = 5, 6
    assert mid == pytest.approx(30.0) and late == pytest.approx(80.0)


def test_ablations_monitor_and_null_cos(tmp_path):
    root = tmp_path / "runs"
    for seed, (v, vnp, enp, mon) in zip((41, 42, 43), [(0.8, 0.6, 0.3, 0.1), (0.7, 0.5, 0.3, 0.0),
                                                       (0.9, 0.7, 0.2, 0.2)]):
        make_run(root, BASELINE, seed, v, 0.3, null_cos=0.05)
        make_run(root, "vanilla_no_pool", seed, vnp, 0.2)
        make_run(root, "erase_no_pool", seed, enp, 0.2, null_cos={"null": 0.2})
        rd = make_run(root, "monitor", seed, mon, 0.25)
        (rd / "config.json").write_text(json.dumps({"monitor_signal": "exploited", "monitor_mode": "screen",
                                                    "monitor_accuracy": 0.9}))
    d = diagnostics(root, "smoke")
    ab = d["ablations"]
    assert ab["vanilla_no_pool"]["reference"] == BASELINE
    assert ab["vanilla_no_pool"]["delta_hack_pp"] == pytest.approx(-20.0)     # 60,50,70 - 80,70,90
    assert ab["vanilla_no_pool"]["ci95_hack_pp"] == pytest.approx([-20.0, -20.0])   # the same d on every seed
    assert ab["erase_no_pool"]["reference"] == "vanilla_no_pool"
    assert ab["erase_no_pool"]["hack_pp"] == pytest.approx(80 / 3) and ab["erase_no_pool"]["n"] == 3
    assert ab["erase_no_pool"]["delta_hack_pp"] == pytest.approx((-30 - 20 - 50) / 3)
    assert ab["erase_no_norm"]["n"] == 0 and ab["erase_no_norm"]["delta_hack_pp"] is None
    m = d["monitor"]
    assert m["hack_pp"] == pytest.approx(10.0) and m["pass_pp"] == pytest.approx(25.0) and m["n"] == 3
    assert (m["signal"], m["mode"], m["accuracy"], m["upper_bound"]) == ("exploited", "screen", 0.9, True)
    nc = d["null_cos"]
    assert nc[BASELINE]["null"] == pytest.approx(0.05) and nc[BASELINE]["ratio"] == pytest.approx(0.1 / 0.05)
    assert nc["erase_no_pool"]["null"] == pytest.approx(0.2) and nc["erase_no_pool"]["ratio"] == pytest.approx(0.5)
    assert nc["monitor"]["null"] is None and "missing" in nc["monitor"]


def test_an_ablation_that_keeps_under_half_its_references_pass_is_labelled_collapse(tmp_path):
    """erase_no_pool "removing" hacking by losing the capability to answer at all must not read as suppression."""
    root = tmp_path / "runs"
    for seed in (41, 42, 43):
        make_run(root, "vanilla_no_pool", seed, 0.4, 0.40)
        make_run(root, "erase_no_pool", seed, 0.0, 0.19)          # 19% < half of 40%: collapse
        make_run(root, "erase_no_norm", seed, 0.3, 0.15)
        make_run(root, METHOD, seed, 0.3, 0.25)                  # erase_no_norm keeps 15 of 25: no collapse
    d = diagnostics(root, "smoke")
    assert d["ablations"]["erase_no_pool"]["collapse"] is True
    assert d["ablations"]["erase_no_norm"]["collapse"] is False
    assert d["ablations"]["erase_two_sided"]["collapse"] is None          # not run
    write_report(root, tmp_path / "report", "smoke")
    md = (tmp_path / "report" / "falsification.md").read_text()
    assert "| erase_no_pool (collapse: pass < ½ reference's) |" in md
    assert "| erase_no_norm |" in md


def test_cos_health_reads_the_last_window(tmp_path):
    root = tmp_path / "runs"
    rd = make_run(root, METHOD, 41, 0.5, 0.0)
    _metrics(rd, [{"step": s, "cos_pre_s": 0.1 * s, "cos_t_hack": 0.4, "cos_t_correct": 0.2} for s in range(1, 31)])
    c = diagnostics(root, "smoke")["cos"][METHOD]
    assert c["cos_pre_s"] == pytest.approx(0.1 * sum(range(6, 31)) / 25)   # the last 25 steps
    assert c["cos_t_hack"] == pytest.approx(0.4) and c["cos_t_correct"] == pytest.approx(0.2)
    assert c["cos_update"] is None


def _lomo_run(root, arm, seed, held_hack: int, held_n: int):
    rd = make_run(root / "lomo" / HELD, arm, seed, 0.5, 0.0)
    _records(rd, 3, [(HELD, i < held_hack, False, False) for i in range(held_n)]
             + [(MODES[0], True, True, False)] * 3)                       # other modes must not count
    return rd


def test_lomo_says_how_often_vanilla_writes_the_held_channel(tmp_path):
    """A fold where vanilla writes the held mode's channel in a form that fails (channel high, hack 0) is told
    apart from one where it never writes it; the column reads the held mode's records only."""
    root = tmp_path / "runs"
    for seed, uses in zip((41, 42), (3, 1)):
        rd = make_run(root / "lomo" / HELD, BASELINE, seed, 0.5, 0.0)
        _records(rd, 3, [(HELD, False, False, False, i < uses) for i in range(4)]
                 + [(MODES[0], True, True, False, True)] * 3)
    make_run(root, BASELINE, 41, 0.5, 0.0)
    d = diagnostics(root, "smoke")
    c = d["lomo"][HELD][BASELINE]
    assert c["hack_pp"] == 0.0 and c["channel_pp"] == pytest.approx((75.0 + 25.0) / 2)
    from harness.reporting.report import diagnostics_lines
    row = next(ln for ln in "\n".join(diagnostics_lines(d)).splitlines() if ln.startswith(f"| {HELD} |"))
    assert "| 50.0 |" in row


def test_lomo_says_no_test_where_vanilla_never_hacks_the_held_mode(tmp_path):
    """An empty fold (vanilla hacks the held mode below LOMO_EMPTY_FOLD_PP) has nothing to suppress: a random V
    that hacks a little more than erase there must not read as 'erase beats random'."""
    from harness.reporting.report import diagnostics_lines

    root = tmp_path / "runs"
    for seed, (e, r) in zip((41, 42, 43), [(0, 1), (0, 1), (0, 2)]):    # random_v 1-2 of 20, erase 0: "beats"
        _lomo_run(root, METHOD, seed, e, 20)
        _lomo_run(root, "random_v", seed, r, 20)
        _lomo_run(root, BASELINE, seed, 0, 20)
    make_run(root, BASELINE, 41, 0.5, 0.0)
    c = diagnostics(root, "smoke")["lomo"][HELD]
    assert c["empty_fold"] is True and c["erase_beats_random"] is None and c["delta_hack_pp"] > 0
    row = next(ln for ln in "\n".join(diagnostics_lines(diagnostics(root, "smoke"))).splitlines()
               if ln.startswith(f"| {HELD} |"))
    assert "no test: empty fold" in row and "| yes |" not in row


def test_lomo_reads_the_held_mode_and_applies_the_controls_rule(tmp_path):
    root = tmp_path / "runs"
    for seed, (e, r) in zip((41, 42, 43), [(1, 3), (0, 4), (1, 4)]):
        _lomo_run(root, METHOD, seed, e, 4)
        _lomo_run(root, "random_v", seed, r, 4)
    make_run(root, BASELINE, 41, 0.5, 0.0)                                  # a main run, so the preset exists
    d = diagnostics(root, "smoke")
    c = d["lomo"][HELD]
    assert c[METHOD]["hack_pp"] == pytest.approx(100 * 2 / 12) and c[METHOD]["n"] == 3
    assert c["random_v"]["hack_pp"] == pytest.approx(100 * 11 / 12)
    assert c["vanilla"]["n"] == 0 and c["vanilla"]["hack_pp"] is None
    assert c["delta_hack_pp"] == pytest.approx(75.0) and c["erase_beats_random"] is True
    d_seeds = [50.0, 100.0, 75.0]                                          # random - erase per seed
    half = 4.30265273 * sem(d_seeds)
    assert c["ci95_hack_pp"] == pytest.approx([75.0 - half, 75.0 + half], abs=1e-6)
    for other in MODES:
        if other != HELD:
            assert d["lomo"][other]["erase_beats_random"] is None          # not run
    # the main scan never sees lomo runs
    assert {r.arm for r in scan_runs(root)} == {BASELINE}
    miss = d["missing"]["lomo"]
    assert {"fold": HELD, "arm": "vanilla", "seed": 41} in miss["runs"]
    assert miss["command"] == f"harness sweep --design lomo --preset smoke --out {root} --seeds 41,42,43"


def test_pass_vacuous_only_when_every_pass_rate_is_below_one_generation(tmp_path):
    root = tmp_path / "runs"
    for seed in (41, 42):
        for arm, p in ((BASELINE, 0.0), (METHOD, 0.0), (ADVANTAGE_BASELINE, 0.05)):
            rd = make_run(root, arm, seed, 0.5, p)
            _metrics(rd, [{"step": 3, "eval_n": 10}])
    recs = scan_runs(root)
    assert pass_vacuous(recs, BASELINE, METHOD) == {"pass_vacuous": True, "resolution_pp": 10.0}
    # 5% of 10 generations cannot happen, but a rate above zero is not "below the resolution" only if >= 10pp
    assert pass_vacuous(recs, ADVANTAGE_BASELINE, METHOD)["pass_vacuous"] is True
    for seed in (41, 42):
        rd = make_run(root, ADVANTAGE_BASELINE, seed, 0.5, 0.1)
        _metrics(rd, [{"step": 3, "eval_n": 10}])
    assert pass_vacuous(scan_runs(root), ADVANTAGE_BASELINE, METHOD)["pass_vacuous"] is False


def test_report_writes_diagnostics_json_markdown_and_figures(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    for seed in (41, 42):
        for arm in (BASELINE, METHOD, ADVANTAGE_BASELINE):
            rd = make_run(root, arm, seed, 0.5 if arm == BASELINE else 0.2, 0.0)
            _records(rd, 3, [(m, arm == BASELINE, False, False) for m in MODES])
            _metrics(rd, [{"step": s, "hack_rate_s": 0.1, "cos_pre": 0.3, "eval_n": 4} for s in (1, 2, 3)])
    mon = make_run(root, "monitor", 41, 0.1, 0.0)
    (mon / "config.json").write_text(json.dumps({"monitor_signal": "exploited", "monitor_mode": "screen"}))
    res = write_report(root, out)
    on_disk = json.loads((out / "falsification.json").read_text())
    assert on_disk["H1"]["pass_vacuous"] is True and on_disk["H3"]["pass_vacuous"] is True
    assert {"verdict", "delta_hack_pp", "sem_pp", "delta_pass_pp", "n", "reason"} <= set(on_disk["H1"])
    assert res["H1"]["verdict"] == on_disk["H1"]["verdict"]
    d = json.loads((out / "diagnostics.json").read_text())
    for key in ("substrate", "per_mode", "null_cos", "cos", "rotation", "ablations", "monitor", "lomo", "missing"):
        assert key in d
    assert d["per_mode"][BASELINE][MODES[0]]["hack_pp"] == 100.0 and d["per_mode"][METHOD][MODES[0]]["hack_pp"] == 0
    assert d["rotation"][METHOD]["hack_late_pp"] == pytest.approx(10.0)
    md = (out / "falsification.md").read_text()
    assert md.index("**Substrate**") < md.index("## Verdicts (preregistered)") < md.index("## Diagnostics")
    assert "not about Qwen3-4B" in md and "pass condition vacuous" in md
    headline_md = md[md.index("## Headline"):md.index("## Verdicts")]
    assert "| monitor" not in headline_md and "| erase |" in headline_md     # the headline: preregistered arms only
    assert "| monitor (ground-truth monitor: upper bound) |" in md[md.index("## Diagnostics"):]
    assert "harness sweep --design ablations" in md and "harness sweep --design lomo" in md
    for png in ("per_mode.png", "cos_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


# --- the monitor's reward hook ------------------------------------------------------------------

def test_monitor_screen_gives_flagged_rollouts_zero_advantage():
    from baselines.monitor import monitored_rewards
    from policy.grpo import group_advantages

    r = torch.tensor([3.5, 3.5, 0.5, 0.0])
    flags = torch.tensor([True, False, False, False])
    a = group_advantages(monitored_rewards(r, flags, "screen", 3.0))
    assert a[0] == 0
    torch.testing.assert_close(a[1:], group_advantages(r[1:]))     # = the group without the flagged rollout
    assert torch.equal(monitored_rewards(r, flags, "penalty", 3.0), torch.tensor([0.5, 3.5, 0.5, 0.0]))
    every = monitored_rewards(r, torch.ones(4, dtype=torch.bool), "screen", 3.0)
    assert (every == every[0]).all()                                # all flagged: a flat group, skipped


def test_monitor_screen_under_the_student_baseline_gives_flagged_rollouts_zero_advantage():
    from baselines.monitor import monitored_rewards
    from policy.grpo import baseline_rows, group_advantages

    # students [hack 3.5, 0.0, 0.5], teachers [3.5, 3.5]: the student baseline of the unflagged students is 0.25
    r = torch.tensor([3.5, 0.0, 0.5, 3.5, 3.5])
    teacher = torch.tensor([False, False, False, True, True])
    flags = torch.tensor([True, False, False, False, False])
    base = baseline_rows("students", teacher)
    a = group_advantages(monitored_rewards(r, flags, "screen", 3.0, base), base)
    assert a[0] == 0
    torch.testing.assert_close(a[1:], torch.tensor([-0.25, 0.25, 3.25, 3.25]))
    # every student flagged: they take the unflagged teachers' mean, and still get A = 0
    all_s = torch.tensor([True, True, True, False, False])
    a = group_advantages(monitored_rewards(r, all_s, "screen", 3.0, base), base)
    assert (a[:3] == 0).all()


def test_monitor_flips_flags_at_the_configured_rate_and_reproducibly():
    from baselines.monitor import flip_mask

    assert not flip_mask(100, 1.0, 41, 1, 0).any()
    m = torch.stack([flip_mask(100, 0.8, 41, s, 0) for s in range(50)])
    assert 0.17 < m.float().mean().item() < 0.23
    assert torch.equal(flip_mask(100, 0.8, 41, 7, 2), flip_mask(100, 0.8, 41, 7, 2))
    assert not torch.equal(flip_mask(100, 0.8, 41, 7, 2), flip_mask(100, 0.8, 42, 7, 2))


def test_monitor_hook_reads_the_configured_signal():
    from types import SimpleNamespace

    from baselines.monitor import MonitorArm
    from harness.presets import resolve_config
    from method.hooks import GroupInfo

    rollouts = [SimpleNamespace(exploited=e, attempted=a, teacher=t) for e, a, t in
                [(True, True, False), (False, True, False), (False, False, True), (False, False, True)]]
    info = GroupInfo.of(rollouts, step=1, group=0)
    r = torch.tensor([3.5, 0.5, 3.5, 0.5])
    for signal, flagged in (("exploited", [True, False, False, False]), ("attempted", [True, True, False, False])):
        arm = MonitorArm()
        arm.setup(SimpleNamespace(config=resolve_config("smoke", "monitor", 41, {"monitor_signal": signal,
                                                                                 "monitor_mode": "penalty"})))
        out, stats = arm.reward_hook(r, None, info)
        assert torch.equal(out, r - 3.0 * torch.tensor(flagged, dtype=torch.float32))
        assert stats["monitor_flagged"] == pytest.approx(sum(flagged) / 4)


# --- arms and designs ----------------------------------------------------------------------------

def test_ablation_arms_are_their_overrides_and_refuse_a_contradicting_set():
    from harness.presets import resolve_config
    from policy.config import ConfigError

    assert resolve_config("mini", "erase_no_pool", 41).teacher_frac == 0.0
    assert resolve_config("mini", "vanilla_no_pool", 41).teacher_per_group == 0
    assert resolve_config("mini", "erase_no_norm", 41).proj_preserve_norm is False
    assert resolve_config("mini", "erase", 41).proj_preserve_norm is True
    with pytest.raises(ConfigError, match="teacher_frac"):
        resolve_config("mini", "erase_no_pool", 41, {"teacher_frac": 0.5})
    with pytest.raises(ConfigError, match="pool_modes"):
        resolve_config("mini", "erase", 41, {"pool_modes": ("nope",)})


def test_designs_plan_their_folds(tmp_path):
    from harness.arms import ABLATIONS, PREREGISTERED_ARMS
    from harness.orchestrate.sweep import plan_design
    from policy.config import ConfigError

    main = plan_design("main", "smoke", [41], tmp_path)
    assert [j.arm for j in main] == list(PREREGISTERED_ARMS)
    abl = plan_design("ablations", "smoke", [41], tmp_path)
    assert [j.arm for j in abl] == list(ABLATIONS) and all(j.path.parent.parent.parent == tmp_path for j in abl)
    lomo = plan_design("lomo", "smoke", [41], tmp_path)
    assert len(lomo) == 3 * len(MODES)
    for j in lomo:
        known = tuple(m for m in MODES if m != j.fold)
        assert j.config.pair_modes == known and j.config.pool_modes == known
        assert j.path == tmp_path / "lomo" / j.fold / "smoke" / j.arm / "seed41"
    with pytest.raises(ConfigError, match="contradicts"):
        plan_design("lomo", "smoke", [41], tmp_path, {"pool_modes": tuple(MODES)})
    with pytest.raises(ConfigError, match="has no arm"):
        plan_design("lomo", "smoke", [41], tmp_path, arms=["rebound"])


def test_restricted_pool_keeps_only_known_modes_and_renames_itself():
    from sandbox.pool import Pool

    rows = [{"problem_id": i, "mode": MODES[i % 4], "completion": "", "reward": 0.0, "exploited": False,
             "gt_correct": False} for i in range(8)]
    pool = Pool(rows=rows, sha256="abc")
    r = pool.restrict(MODES[:3])
    assert {row["mode"] for row in r.rows} == set(MODES[:3]) and len(r.rows) == 6
    assert r.sha256 != pool.sha256 and r.sha256 == pool.restrict(reversed(MODES[:3])).sha256


def test_v_cache_key_includes_pair_modes_only_when_restricted():
    from types import SimpleNamespace

    from harness.presets import resolve_config
    from method.extract import v_cache_key

    def key(**over):
        ctx = SimpleNamespace(config=resolve_config("smoke", "erase", 41, over),
                              policy=SimpleNamespace(base_hash="m", basis_hash="", adapters={"a": None}))
        return v_cache_key(ctx, "real", "p", "base")

    assert "pair_modes" not in key()                       # all-mode keys (and cached V files) unchanged
    assert key(pair_modes=MODES[:3])["pair_modes"] == sorted(MODES[:3])
    assert key(pair_modes=MODES[:3]) != key(pair_modes=MODES[1:])


def test_load_pairs_keeps_only_the_known_modes():
    from harness.presets import resolve_config
    from method.pair_sets import load_pairs
    from method.pairs import HACK_SET

    fit, held = load_pairs(HACK_SET, resolve_config("smoke", "erase", 41, {"pair_modes": MODES[1:]}))
    assert {p.mode for p in fit + held} == set(MODES[1:])


def test_eval_log_on_resume_drops_evaluations_after_the_checkpoint(tmp_path):
    from harness.rundir import read_eval_records
    from harness.train.loop import open_eval_log

    _records(tmp_path, 0, [(MODES[0], False, False, False)])
    _records(tmp_path, 2, [(MODES[0], True, True, False)])
    _records(tmp_path, 4, [(MODES[0], True, True, False)] * 2)      # logged after the checkpoint at step 2
    log = open_eval_log(tmp_path / EVAL_RECORDS_FILE, keep_through=2)
    assert [r["step"] for r in read_eval_records(tmp_path)] == [0, 2]
    log.append([{"step": 4, "mode": MODES[1]}])
    assert [r["step"] for r in read_eval_records(tmp_path)] == [0, 2, 4]
    open_eval_log(tmp_path / EVAL_RECORDS_FILE, keep_through=-1)     # a restart before the step-0 eval
    assert read_eval_records(tmp_path) == []


def test_report_says_not_run_for_a_missing_monitor(tmp_path):
    """Without monitor runs the monitor section says so, instead of printing the settings as None."""
    root, out = tmp_path / "runs", tmp_path / "report"
    for seed in (41, 42):
        for arm in (BASELINE, METHOD):
            make_run(root, arm, seed, 0.5 if arm == BASELINE else 0.2, 0.1)
    write_report(root, out)
    md = (out / "falsification.md").read_text()
    section = md[md.index("### Hack monitor"):md.index("### Leave one mode out")]
    assert "None" not in section and "not run" in section


def test_matched_null_and_drift_reach_diagnostics_and_the_report(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    disp = lambda x: {"mean_per_axis": x, "frac_of_norm": x / 4, "span_share": 0.5, "delta_s_norm": 4.0,  # noqa: E731
                      "per_axis": [x], "n_modules": 2}
    for seed, (cos, m, x) in zip((41, 42), [(0.3, 0.1, 1.0), (0.2, 0.05, 2.0)]):
        make_run(root, METHOD, seed, 0.2, 0.1, mean_cos=cos, null_cos=0.1, null_cos_matched=m, v_displacement=disp(x))
        make_run(root, BASELINE, seed, 0.5, 0.1, mean_cos=cos, null_cos=0.1)      # an old summary: no new keys
    d = diagnostics(root, "smoke")
    nc = d["null_cos"][METHOD]
    assert nc["null_matched"] == pytest.approx(0.075) and nc["ratio_matched"] == pytest.approx((3.0 + 4.0) / 2)
    assert d["null_cos"][BASELINE]["null_matched"] is None
    assert d["v_displacement"][METHOD]["mean_per_axis"] == pytest.approx(1.5) and d["v_displacement"][METHOD]["n"] == 2
    assert BASELINE not in d["v_displacement"]
    write_report(root, out)
    md = (out / "falsification.md").read_text()
    assert "matched null" in md and "### Steering drift" in md
    row = next(line for line in md.splitlines() if line.startswith(f"| {METHOD} |") and "1.5000" in line)
    assert "0.375" in row


def test_full_reports_vanillas_run_tests_hack_rate_beside_the_benchmarks(tmp_path):
    """On the presets that run Qwen3-4B on the benchmark's problems the report sets vanilla's held-out run_tests
    hack rate beside the benchmark's 79%, with what still differs; elsewhere it says nothing of the kind."""
    from sandbox.loopholes import MODE_RUN_TESTS

    for preset in ("full", "mini"):
        root, out = tmp_path / preset / "runs", tmp_path / preset / "report"
        for seed, rows in ((41, [(MODE_RUN_TESTS, True, True, False)] * 3 + [(MODE_RUN_TESTS, False, False, True)]),
                           (42, [(MODE_RUN_TESTS, True, True, False), (MODES[1], True, True, False)])):
            for arm in (BASELINE, METHOD):
                rd = make_run(root, arm, seed, 0.5, 0.1, preset=preset)
                _records(rd, 3, rows)
        b = diagnostics(root, preset)["benchmark"]
        assert b["hack_pp"] == pytest.approx((75.0 + 100.0) / 2) and b["n"] == 5 and b["reference_pp"] == 79.0
        write_report(root, out, preset=preset)
        md = (out / "falsification.md").read_text()
        assert b["comparable"] == (preset == "full")
        assert ("### Beside the benchmark's 79%" in md) == (preset == "full")
        if preset == "full":
            assert "run_tests-mode hack rate (final evaluation): **87.5% (n = 5, 2 seed(s))**" in md
            assert all(f"- {x}" in md for x in b["differences"])
