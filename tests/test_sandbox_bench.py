"""`make bench-grader` on a tiny slice: every workload, the compute floor and both ratios are printed."""
from __future__ import annotations

import json
import re

from harness.checks import bench_grader as bench
from sandbox.exploits import fenced


def test_bench_prints_floor_and_naive_ratios_for_every_workload(tmp_path, problems, capsys):
    run = tmp_path / "runs" / "mini" / "vanilla" / "seed41"
    run.mkdir(parents=True)
    rows = [{"step": 1, "id": p.id, "completion": fenced(p.canonical_solution)} for p in problems[:2]]
    rows.append({"step": 1, "id": problems[2].id, "completion": "no code at all"})
    (run / "rollouts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    bench.main(["--limit", "2", "--rollouts", str(tmp_path / "runs"), "--backends", "process", "--chunk", "2"])
    out = capsys.readouterr().out
    assert "rollouts: 3 student completions from 1 file(s)" in out
    for part in ("canonical", "hacks", "rollouts", "all"):
        line = re.search(rf"^process fork server\s+{part}\s+(\S+)\s+(\S+)\s+x(\S+)\s+(\S+)\s+x(\S+)$", out, re.M)
        assert line, (part, out)
        floor, ratio = float(line.group(4)), float(line.group(5))
        assert floor > 0 and ratio > 0
    assert "verdicts identical to naive: True" in out
    assert "verdicts rollouts: {'correct': 2, 'incorrect': 1}" in out


def test_rollout_ids_resolve_in_any_problem_set(tmp_path):
    """A mini run's rollouts carry mini's own ids (not in the LeetCode test split): the bench and
    `harness grade` resolve them against every problem set on this machine."""
    from sandbox.data import load_problem_set
    from sandbox.grade_file import grade_file

    mini = load_problem_set("mini").train[:2]
    f = tmp_path / "rollouts.jsonl"
    f.write_text("".join(json.dumps({"step": 1, "id": p.id, "completion": fenced(p.canonical_solution)}) + "\n"
                         for p in mini))
    work, _ = bench.workload(limit=1, rollouts=str(f))
    assert [p.id for p, _, _ in work["rollouts"]] == [p.id for p in mini]
    summary = grade_file(f, tmp_path / "graded.jsonl", "process", workers=1)
    graded = [json.loads(line) for line in (tmp_path / "graded.jsonl").read_text().splitlines()]
    assert [g["gt_correct"] for g in graded] == [True, True], summary
