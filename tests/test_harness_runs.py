"""Run layout: atomic JSON, the summary schema, the same-config check, the scan."""
from __future__ import annotations

import json

import pytest

from harness.orchestrate.runs import plan_action, prepare_run_dir
from harness.presets import resolve_config
from harness.rundir import (CONFIG_FILE, SUMMARY_FIELDS, SUMMARY_FILE, read_config, read_config_json, read_metrics,
                            read_summary, run_dir, scan_runs, write_json_atomic, write_summary)
from policy.config import RunError
from tests.harness_helpers import make_run


def test_atomic_write_leaves_no_temp_files(tmp_path):
    p = write_json_atomic(tmp_path / "a" / "x.json", {"b": (1, 2)})
    assert json.loads(p.read_text()) == {"b": [1, 2]}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "a" / "x.json", {"b": object()})
    assert json.loads(p.read_text()) == {"b": [1, 2]}          # old content intact
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_summary_schema(tmp_path):
    good = dict(arm="erase", seed=41, preset="smoke", steps=3, hack_rate=0.1, pass_rate=0.2, kl=None,
                mean_cos=None, frac_fired=None, grad_norm=1.0, wall_s=2.0, hashes={})
    s = json.loads(write_summary(tmp_path, good).read_text())
    assert s["complete"] is True and set(SUMMARY_FIELDS) <= set(s)
    with pytest.raises(RunError, match="lacks"):
        write_summary(tmp_path, {k: v for k, v in good.items() if k != "kl"})
    with pytest.raises(RunError, match="fraction"):
        write_summary(tmp_path, {**good, "hack_rate": 45.0})     # pp, not a fraction


def test_scan_lists_incomplete_with_reasons(tmp_path):
    make_run(tmp_path, "erase", 41, 0.1, 0.2)
    make_run(tmp_path, "erase", 42, 0.1, 0.2, complete=False)
    bad = run_dir(tmp_path, "smoke", "erase", 43)
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text('{"arm": "erase", "comp')
    moved = make_run(tmp_path, "vanilla", 41, 0.1, 0.2)
    (moved.parent / "seed44").mkdir()
    (moved / "summary.json").rename(moved.parent / "seed44" / "summary.json")   # says seed41, lives in seed44
    recs = {(r.arm, r.seed): r for r in scan_runs(tmp_path)}
    assert recs[("erase", 41)].complete
    assert "complete != true" in recs[("erase", 42)].reason
    assert "corrupt" in recs[("erase", 43)].reason
    assert "no summary.json" in recs[("vanilla", 41)].reason
    assert "directory says" in recs[("vanilla", 44)].reason
    assert sum(r.complete for r in recs.values()) == 1


@pytest.mark.parametrize("name", [SUMMARY_FILE, CONFIG_FILE])
@pytest.mark.parametrize("text,why", [("[1, 2]", "not a JSON object"), ('{"arm": "erase", "comp', "corrupt")])
def test_summary_and_config_must_be_json_objects(tmp_path, name, text, why):
    (tmp_path / name).write_text(text)
    with pytest.raises(RunError, match=why):
        read_summary(tmp_path) if name == SUMMARY_FILE else read_config(tmp_path)


def test_config_json_with_loop_metadata_is_read(tmp_path):
    cfg = resolve_config("smoke", "erase", 41)
    write_json_atomic(tmp_path / CONFIG_FILE, {**cfg.to_dict(), "config_hash": cfg.config_hash(),
                                               "hashes": {"model": "x"}, "resolved": {"device": "cpu"}})
    assert read_config(tmp_path) == cfg
    assert plan_action(tmp_path, cfg, resume=False, force=False) == "fresh"


@pytest.mark.parametrize("text", [None, "[1, 2]", '{"arm": "erase", "comp', "\xff"])
def test_the_reports_config_reader_passes_over_what_it_cannot_read(tmp_path, text):
    """The reports read config.json through read_config_json: None for a missing, corrupt or non-object file
    (that run is shown without its setup line), the whole object, loop metadata included, otherwise."""
    if text is not None:
        (tmp_path / CONFIG_FILE).write_bytes(text.encode("latin-1"))
    assert read_config_json(tmp_path) is None
    write_json_atomic(tmp_path / CONFIG_FILE, {"arm": "erase", "resolved": {"v_validation": {"passed": True}}})
    assert read_config_json(tmp_path) == {"arm": "erase", "resolved": {"v_validation": {"passed": True}}}


def test_plan_actions(tmp_path):
    cfg = resolve_config("smoke", "erase", 41)
    rd = run_dir(tmp_path, "smoke", "erase", 41)
    assert plan_action(rd, cfg, resume=False, force=False) == "fresh"
    assert prepare_run_dir(rd, cfg, resume=False, force=False) == "fresh"
    (rd / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2')        # torn last line
    assert [r["step"] for r in read_metrics(rd)] == [1]
    assert plan_action(rd, cfg, resume=True, force=False) == "resume"
    with pytest.raises(RunError, match="partial"):
        plan_action(rd, cfg, resume=False, force=False)
    assert prepare_run_dir(rd, cfg, resume=False, force=True) == "overwrite"
    assert not (rd / "metrics.jsonl").exists()
    make_run(tmp_path, "erase", 41, 0.1, 0.2)
    assert plan_action(rd, cfg, resume=False, force=False) == "skip"
    other = resolve_config("smoke", "erase", 41, {"kl_beta": 0.5})
    with pytest.raises(RunError, match="kl_beta"):
        plan_action(rd, other, resume=True, force=False)
    stray = run_dir(tmp_path, "smoke", "erase", 42)
    stray.mkdir(parents=True)
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="no config.json"):
        plan_action(stray, cfg, resume=True, force=False)


def test_jsonl_file_drops_a_torn_last_line_and_keep_rewrites_it(tmp_path):
    """A kill during append leaves half a line; resume (keep) must still read the file."""
    from sandbox.jsonl import JsonlFile

    f = JsonlFile(tmp_path / "rollouts.jsonl")
    f.append([{"step": 1}, {"step": 2}])
    with open(f.path, "a") as fh:
        fh.write('{"step": 3, "compl')
    assert f.read() == [{"step": 1}, {"step": 2}]
    f.keep(lambda r: r["step"] <= 1)
    assert f.read() == [{"step": 1}] and f.path.read_text() == '{"step": 1}\n'
    f.path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        f.read()


def test_metrics_log_writes_sorted_rows_and_rewrite_replaces_the_file(tmp_path):
    """metrics.jsonl through the shared JsonlFile: keys sorted, fsynced appends, rewrite replaces everything."""
    from method.metrics import MetricsLog

    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.rewrite([{"step": 1, "kl": 0.5}])
    log.append({"step": 2, "kl": 0.25})
    assert log.path.read_text() == '{"kl": 0.5, "step": 1}\n{"kl": 0.25, "step": 2}\n'
    log.rewrite([])
    assert log.path.read_text() == "" and not list(tmp_path.glob(".*.tmp"))
