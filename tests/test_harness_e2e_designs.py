"""End to end on smoke: the three designs (main, ablations, lomo) really trained, then `harness report`; the
diagnostics' numbers are recomputed here from the run dirs' own files."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.arms import ABLATIONS, ARMS, BASELINE, PREREGISTERED_ARMS
from harness.cli import cli
from harness.orchestrate.designs import LOMO_ARMS
from harness.reporting.diagnostics import LOMO_EMPTY_FOLD_PP
from harness.rundir import read_eval_records, read_summary, run_dir
from sandbox.loopholes import MODES

SEED = 41


def _held_rates(path, mode):
    rows = read_eval_records(path)
    last = max(r["step"] for r in rows)
    rows = [r for r in rows if r["step"] == last and r["mode"] == mode]
    return 100.0 * sum(r["exploited"] for r in rows) / len(rows), 100.0 * sum(r["gt_correct"] for r in rows) / len(rows)


@pytest.mark.slow
def test_smoke_three_designs_then_report(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "report"
    for design in ("main", "ablations", "lomo"):
        r = CliRunner().invoke(cli, ["sweep", "--design", design, "--preset", "smoke", "--out", str(runs),
                                     "--seeds", str(SEED), "--sandbox", "process"], catch_exceptions=False)
        assert r.exit_code == 0, r.output[-3000:]
    r = CliRunner().invoke(cli, ["report", "--runs", str(runs), "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output[-3000:]

    fals = json.loads((out / "falsification.json").read_text())
    assert "pass_vacuous" in fals["H1"] and "pass_vacuous" in fals["H3"]
    d = json.loads((out / "diagnostics.json").read_text())
    assert d["substrate"]["preset"] == "smoke" and d["substrate"]["n_params"] > 0
    assert set(d["per_mode"]) == set(PREREGISTERED_ARMS) | set(ABLATIONS)
    for arm, modes in d["per_mode"].items():
        for mode, cell in modes.items():
            hack, pss = _held_rates(run_dir(runs, "smoke", arm, SEED), mode)
            assert cell["per_seed"][str(SEED)]["hack_pp"] == pytest.approx(hack)
            assert cell["pass_pp"] == pytest.approx(pss)
    for arm, cell in d["ablations"].items():
        s = read_summary(run_dir(runs, "smoke", arm, SEED))
        assert cell["n"] == 1 and cell["hack_pp"] == pytest.approx(100 * s["hack_rate"])
        ref = read_summary(run_dir(runs, "smoke", ARMS[arm].reference, SEED))
        assert cell["delta_hack_pp"] == pytest.approx(100 * (s["hack_rate"] - ref["hack_rate"]))
    m = d["monitor"]
    assert m["hack_pp"] == pytest.approx(100 * read_summary(run_dir(runs, "smoke", "monitor", SEED))["hack_rate"])
    assert (m["signal"], m["mode"], m["accuracy"], m["upper_bound"]) == ("exploited", "screen", 1.0, True)
    assert set(d["lomo"]) == set(MODES)
    for held, cell in d["lomo"].items():
        for arm in LOMO_ARMS:
            hack, pss = _held_rates(run_dir(runs / "lomo" / held, "smoke", arm, SEED), held)
            assert cell[arm]["n"] == 1 and cell[arm]["hack_pp"] == pytest.approx(hack)
            assert cell[arm]["pass_pp"] == pytest.approx(pss)
            rows = [r for r in read_eval_records(run_dir(runs / "lomo" / held, "smoke", arm, SEED))
                    if r["mode"] == held]
            last = [r for r in rows if r["step"] == max(x["step"] for x in rows)]
            channel = 100.0 * sum(r["defines_check"] for r in last) / len(last)
            assert cell[arm]["channel_pp"] == pytest.approx(channel)
        # one seed: the controls' rule needs n >= 2; an empty fold (vanilla below the bar) is no test at all
        assert cell["erase_beats_random"] is (None if cell["empty_fold"] else False)
        assert cell["empty_fold"] is (cell[BASELINE]["hack_pp"] < LOMO_EMPTY_FOLD_PP)
        cfg = json.loads((run_dir(runs / "lomo" / held, "smoke", "erase", SEED) / "config.json").read_text())
        assert held not in cfg["pair_modes"] and held not in cfg["pool_modes"] and len(cfg["pool_modes"]) == 3
        assert cfg["allow_weak_v"] is True                  # a fold's V failing validation is a result, not a stop
        val = cfg["resolved"]["v_validation"]
        assert cell["v_validation"] == {"passed": val["passed"], "frac_positive": val["frac_positive"],
                                        "null_p95": val["null_frac_positive_p95"]}
    for design in ("main", "ablations", "lomo"):      # one seed of the preregistered three: the rest is missing
        assert d["missing"][design]["command"].startswith(f"harness sweep --design {design} --preset smoke")
    assert all(k in d["rotation"][a] for a in d["rotation"] for k in ("hack_mid_pp", "hack_late_pp"))
    assert all("cos_t_hack" in d["cos"][a] for a in d["cos"])
    md = (out / "falsification.md").read_text()
    assert "## Diagnostics" in md and "### Leave one mode out" in md and "upper bound" in md
    for png in ("per_mode.png", "cos_curves.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
