"""falsification.{json,md}, the headline table numbers and the pareto and curves plots, on hand-made runs."""
from __future__ import annotations

import json

import pytest

from harness.arms import ADVANTAGE_BASELINE, BASELINE, CONTROLS, METHOD
from harness.reporting.report import CURVE_HACK, CURVE_PASS, curves, headline, pareto_front, write_report
from harness.rundir import scan_runs
from method.metrics import METRICS
from tests.harness_helpers import make_arm, make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    make_arm(root, BASELINE, [0.8, 0.7, 0.9], [0.30, 0.35, 0.32])
    make_arm(root, METHOD, [0.4, 0.35, 0.45], [0.28, 0.30, 0.33])
    make_arm(root, ADVANTAGE_BASELINE, [0.6, 0.5, 0.7], 0.3)
    make_run(root, CONTROLS[0], 41, 0.9, 0.3, complete=False)
    (root / "smoke" / CONTROLS[1] / "seed41").mkdir(parents=True)   # started, nothing written
    return root


def test_curve_metrics_are_registered():
    assert CURVE_HACK in METRICS and CURVE_PASS in METRICS


def test_pareto_front():
    pts = [(10, 20), (20, 30), (15, 10), (5, 5), (30, 30), (25, 40)]
    assert pareto_front(pts) == [(5, 5), (10, 20), (20, 30), (25, 40)]


def test_headline_numbers(runs):
    rows = {r["arm"]: r for r in headline([r for r in scan_runs(runs) if r.complete])}
    assert list(rows) == [BASELINE, METHOD, ADVANTAGE_BASELINE]   # registry order, complete arms only
    assert rows[BASELINE]["dsafe"] is None
    # per seed: (pass - hack) - vanilla's: (28-40)-(30-80)=38, (30-35)-(35-70)=30, (33-45)-(32-90)=46
    d = rows[METHOD]["dsafe"]
    assert d.mean == pytest.approx(38.0) and d.n == 3 and d.sem == pytest.approx(8 / 3 ** 0.5)
    assert rows[METHOD]["hack_rate"].mean == pytest.approx(40.0)
    assert rows[ADVANTAGE_BASELINE]["pass_rate"].mean == pytest.approx(30.0)
    assert rows[ADVANTAGE_BASELINE]["pass_rate"].sem == pytest.approx(0.0)


def test_curves_mean_over_seeds(runs):
    c = curves(scan_runs(runs), CURVE_HACK)
    steps, ys = c[METHOD]
    assert steps == [1, 2, 3]
    assert ys[-1] == pytest.approx(0.4) and ys[0] == 0.0


def test_write_report(runs, tmp_path):
    out = tmp_path / "report"
    result = write_report(runs, out)
    on_disk = json.loads((out / "falsification.json").read_text())
    assert on_disk == result
    assert result["preset"] == "smoke"
    assert result["H1"]["verdict"] == "supported"
    assert result["H4"]["verdict"] == "supported"
    assert result["controls"]["hack_specific"] is False
    assert all(result["controls"][c]["erase_beats"] is None for c in CONTROLS)
    md = (out / "falsification.md").read_text()
    assert ("| Arm | ΔSafePass↑ | Hack %↓ | Pass %↑ | KL↓ | mean·cos* | null·cos* | cos/null* | frac·fired* | ‖g‖* | n |"
            in md)
    assert "| vanilla | 0 (ref) | 80.0 ± 5.8 |" in md
    assert "| erase | 38.0 ± 4.6 | 40.0 ± 2.9 |" in md
    assert "## Incomplete runs" in md
    assert f"smoke/{CONTROLS[0]}/seed41" in md and f"smoke/{CONTROLS[1]}/seed41" in md
    assert "## Missing runs" in md
    assert f"harness run --arm route,{','.join(CONTROLS)} --seeds 41,42,43 --preset smoke --out {runs}" in md
    for name in ("pareto.png", "curves.png"):
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_missing_runs_none_when_matrix_complete(tmp_path):
    from harness.arms import PREREGISTERED_ARMS
    for arm in PREREGISTERED_ARMS:
        make_arm(tmp_path / "runs", arm, [0.5, 0.5, 0.5], 0.3)
    write_report(tmp_path / "runs", tmp_path / "report")
    md = (tmp_path / "report" / "falsification.md").read_text()
    assert "none: every arm has every seed" in md and "harness run --arm" not in md


def test_report_on_lomo_runs_alone_says_the_main_matrix_is_missing(tmp_path):
    from harness.orchestrate.designs import LOMO_ROOT
    from policy.config import RunError

    root = tmp_path / "runs"
    make_run(root / LOMO_ROOT / "sentinel", BASELINE, 41, 0.1, 0.2)
    with pytest.raises(RunError, match="only leave-one-mode-out runs.*--design main"):
        write_report(root, tmp_path / "report")
    with pytest.raises(RunError, match="no runs found"):     # an empty folder keeps the plain message
        write_report(tmp_path / "empty", tmp_path / "report")
