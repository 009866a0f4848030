"""harness.checks.fingerprint: timings are left out of a run's hashes; compare fails on any other difference."""
from __future__ import annotations

import json

from harness.checks.fingerprint import _run_hashes, compare


def _run(rd, wall_s: float, hack_rate: float):
    rd.mkdir(parents=True)
    (rd / "summary.json").write_text(json.dumps({"hack_rate": hack_rate, "wall_s": wall_s}))
    (rd / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 0.5, "t_gen": wall_s}) + "\n")
    (rd / "rollouts.jsonl").write_text('{"id": 1}\n')
    return _run_hashes(rd)


def test_timings_do_not_count_and_anything_else_does(tmp_path, capsys):
    a, b, c = (_run(tmp_path / n, w, h) for n, w, h in (("a", 1.0, 0.25), ("b", 7.0, 0.25), ("c", 1.0, 0.5)))
    assert a == b and a["summary.json"] != c["summary.json"] and a["metrics.jsonl"] == c["metrics.jsonl"]
    for name, arms in (("a", a), ("b", b), ("c", c)):
        (tmp_path / f"{name}.json").write_text(json.dumps({"arms": {"vanilla": arms}}))
    assert compare(tmp_path / "a.json", tmp_path / "b.json") == 0
    assert compare(tmp_path / "a.json", tmp_path / "c.json") == 1
    assert "DIFF arms/vanilla/summary.json" in capsys.readouterr().out
