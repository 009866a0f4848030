"""The CLI's bad-input contract (one line, non-zero exit) and its plan / falsify / report paths, without training."""
from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from harness.arms import ARMS, BASELINE, METHOD
from harness.cli import cli, parse_seeds
from harness.orchestrate.runs import prepare_run_dir
from harness.presets import resolve_config
from harness.rundir import CONFIG_FILE, run_dir
from policy.config import ConfigError
from tests.harness_helpers import make_arm, make_run


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def assert_one_line_error(result, code, *needles):
    assert result.exit_code == code, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, err
    assert "Traceback" not in result.output
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("cmd", [[], ["run"], ["sweep"], ["falsify"], ["report"], ["extract"], ["build-pool"],
                                 ["build-base"], ["grade"], ["data"], ["doctor"], ["hashes"]])
def test_help_everywhere(cmd):
    r = invoke(*cmd, "--help")
    assert r.exit_code == 0 and "Usage: " in r.output


# --- bad input ------------------------------------------------------------------------

def test_unknown_arm(tmp_path):
    assert_one_line_error(invoke("run", "--arm", "vanilla,bogus", "--preset", "smoke", "--out", str(tmp_path),
                                 "--dry-run"), 2, "unknown arm 'bogus'", "erase")


def test_unknown_preset(tmp_path):
    assert_one_line_error(invoke("run", "--arm", "vanilla", "--preset", "huge", "--out", str(tmp_path)), 2,
                          "unknown preset 'huge'")
    assert_one_line_error(invoke("sweep", "--preset", "huge", "--out", str(tmp_path)), 2, "unknown preset")


@pytest.mark.parametrize("seeds", ["41,,42", "a,b", "41,41", "-1", "", "4.5"])
def test_malformed_seeds(tmp_path, seeds):
    assert_one_line_error(invoke("run", "--arm", "vanilla", "--seeds", seeds, "--preset", "smoke",
                                 "--out", str(tmp_path), "--dry-run"), 2, "--seeds")


def test_parse_seeds_ok():
    assert parse_seeds("41, 42,43") == [41, 42, 43]
    with pytest.raises(ConfigError):
        parse_seeds("41;42")


@pytest.mark.parametrize("item, needle", [("nosuchkey=1", "unknown --set key 'nosuchkey'"),
                                          ("lr=fast", "--set lr: expected float"),
                                          ("steps=2.5", "--set steps: expected int"),
                                          ("grad_checkpointing=maybe", "expected bool"),
                                          ("lr", "expects key=value"),
                                          ("seed=7", "use --seeds")])
def test_bad_set(tmp_path, item, needle):
    assert_one_line_error(invoke("run", "--arm", "vanilla", "--preset", "smoke", "--out", str(tmp_path),
                                 "--set", item, "--dry-run"), 2, needle)


def test_address_needs_ray_executor(tmp_path):
    assert_one_line_error(invoke("sweep", "--preset", "smoke", "--out", str(tmp_path), "--address", "auto"), 2,
                          "--address")


def test_extract_kinds_come_from_the_v_kind_registry(monkeypatch):
    from method import extract as ex
    assert_one_line_error(invoke("extract", "--preset", "smoke", "--kind", "real,bogus"), 2, "bogus",
                          ", ".join(ex.KINDS))
    monkeypatch.setattr(ex, "KINDS", (*ex.KINDS, "extra"))   # a kind added to the registry is accepted as is
    seen = []
    monkeypatch.setattr(ex, "extract_for_config", lambda config, kinds: seen.append(kinds) or {})
    assert invoke("extract", "--preset", "smoke", "--kind", "extra").exit_code == 0
    assert invoke("extract", "--preset", "smoke").exit_code == 0
    assert seen == [("extra",), ex.KINDS]


# --- the out dir ------------------------------------------------------------------------

def test_refuses_other_config_unless_force(tmp_path):
    rd = run_dir(tmp_path, "smoke", BASELINE, 41)
    prepare_run_dir(rd, resolve_config("smoke", BASELINE, 41, {"lr": 0.5}), resume=False, force=False)
    before = (rd / CONFIG_FILE).read_text()
    args = ["run", "--arm", BASELINE, "--seeds", "41", "--preset", "smoke", "--out", str(tmp_path), "--dry-run"]
    assert_one_line_error(invoke(*args), 1, "different config", "lr: 0.5 -> 0.01", "--force")
    r = invoke(*args, "--force")
    assert r.exit_code == 0 and "overwrite" in r.output
    assert (rd / CONFIG_FILE).read_text() == before          # dry run touches nothing
    # the same config with the override is accepted: config.json alone starts fresh; with progress, resume or force
    r = invoke(*args, "--set", "lr=0.5")
    assert r.exit_code == 0 and "fresh" in r.output
    (rd / "metrics.jsonl").write_text('{"step": 1}\n')
    assert_one_line_error(invoke(*args, "--set", "lr=0.5"), 1, "partial run", "--resume")
    r = invoke(*args, "--set", "lr=0.5", "--resume")
    assert r.exit_code == 0 and "resume" in r.output


def test_corrupt_config_is_one_line(tmp_path):
    rd = run_dir(tmp_path, "smoke", METHOD, 41)
    rd.mkdir(parents=True)
    (rd / CONFIG_FILE).write_text("{not json")
    assert_one_line_error(invoke("run", "--arm", METHOD, "--seeds", "41", "--preset", "smoke", "--out",
                                 str(tmp_path), "--dry-run"), 1, "corrupt", "--force")


def test_complete_run_is_skipped(tmp_path):
    rd = run_dir(tmp_path, "smoke", METHOD, 41)
    prepare_run_dir(rd, resolve_config("smoke", METHOD, 41), resume=False, force=False)
    make_run(tmp_path, METHOD, 41, 0.1, 0.2)
    r = invoke("run", "--arm", METHOD, "--seeds", "41", "--preset", "smoke", "--out", str(tmp_path))
    assert r.exit_code == 0 and "skip" in r.output


def test_missing_and_corrupt_pool(tmp_path):
    args = ["run", "--arm", BASELINE, "--seeds", "41", "--preset", "smoke", "--out", str(tmp_path / "runs"),
            "--dry-run"]
    assert_one_line_error(invoke(*args, "--set", f"teacher_pool={tmp_path}/nope.jsonl"), 1, "not found")
    (tmp_path / "bad.jsonl").write_text('{"problem_id": 1, "compl\n')
    assert_one_line_error(invoke(*args, "--set", f"teacher_pool={tmp_path}/bad.jsonl"), 1, "corrupt")


def test_missing_model_dir(tmp_path):
    (tmp_path / "model").mkdir()
    assert_one_line_error(invoke("run", "--arm", BASELINE, "--seeds", "41", "--preset", "smoke", "--out",
                                 str(tmp_path / "runs"), "--set", f"model={tmp_path}/model", "--dry-run"), 1,
                          "no config.json")


def test_sweep_dry_run_plans_every_arm_and_touches_nothing(tmp_path):
    from harness.arms import ABLATIONS, PREREGISTERED_ARMS
    make_run(tmp_path, METHOD, 42, 0.1, 0.2)                 # a hand-made dir without config.json
    r = invoke("sweep", "--preset", "smoke", "--out", str(tmp_path), "--seeds", "41", "--dry-run")
    assert r.exit_code == 0, r.output
    for arm in PREREGISTERED_ARMS:                           # the default design is the preregistered matrix
        assert arm in r.output
    assert not any(a in r.output for a in ABLATIONS)
    assert not (tmp_path / "smoke" / BASELINE).exists()


def test_run_dry_run_prints_resolved_config_and_memory_estimate_offline(tmp_path):
    from policy.model_loading import dry_run
    r = invoke("run", "--arm", f"{METHOD},{BASELINE}", "--seeds", "41", "--preset", "full", "--out", str(tmp_path),
               "--set", "max_new_tokens=512", "--dry-run")
    assert r.exit_code == 0, r.output
    cfg = resolve_config("full", METHOD, 41, {"max_new_tokens": 512})
    text = r.output
    shown = json.loads(text[text.index("{\n"):text.index("\n}\n") + 2])     # the first job's config, in full
    assert shown == json.loads(json.dumps(cfg.to_dict())) and shown["model"] == "Qwen/Qwen3-4B"
    assert cfg.config_hash() in text and f"full/{BASELINE}/seed41: same, except arm='{BASELINE}'" in text
    mem = dry_run(cfg)["memory_gib"]                         # from KNOWN_ARCHS: no hub, no weights
    rows = {c[0]: c[1] for c in ([x.strip() for x in line.strip("│ ").split("│")] for line in text.splitlines())
            if len(c) == 2}
    assert rows["total_gib"] == f"{mem['total_gib']:.2f}" and 15 < float(rows["total_gib"]) < 80
    assert rows["kv_cache_generation"] == f"{mem['kv_cache_generation']:.2f}"
    assert "all 2 run(s)" in text and "not a measurement" in text
    assert not (tmp_path / "full").exists()
    # a builtin base is not built by a dry run: the estimate is skipped, saying so
    r = invoke("run", "--arm", BASELINE, "--seeds", "41", "--preset", "smoke", "--out", str(tmp_path), "--dry-run")
    assert r.exit_code == 0 and "memory estimate: skipped for builtin:smoke" in r.output


# --- falsify / report --------------------------------------------------------------------

def test_falsify_and_report_commands(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "report"
    make_arm(runs, BASELINE, [0.8, 0.7, 0.9], 0.3)
    make_arm(runs, METHOD, [0.2, 0.25, 0.3], 0.3)
    r = invoke("falsify", "--runs", str(runs), "--out", str(out))
    assert r.exit_code == 0, r.output
    assert "Verdicts" in r.output and "supported" in r.output
    res = json.loads((out / "falsification.json").read_text())
    assert res["H1"]["verdict"] == "supported" and res["H3"]["verdict"] == "not run"
    r = invoke("report", "--runs", str(runs), "--out", str(out))
    assert r.exit_code == 0 and (out / "pareto.png").exists() and (out / "curves.png").exists()
    r = invoke("hashes", "--runs", str(runs))
    assert r.exit_code == 0 and "model: one value across runs: m" in r.output


def test_falsify_errors(tmp_path):
    assert_one_line_error(invoke("falsify", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "r")), 1,
                          "does not exist")
    make_arm(tmp_path, BASELINE, [0.8], 0.3, seeds=(41,), preset="smoke")
    make_arm(tmp_path, BASELINE, [0.8], 0.3, seeds=(41,), preset="mini")
    assert_one_line_error(invoke("falsify", "--runs", str(tmp_path), "--out", str(tmp_path / "r")), 1,
                          "--preset")
    assert_one_line_error(invoke("falsify", "--runs", str(tmp_path), "--preset", "nope", "--out",
                                 str(tmp_path / "r")), 2, "unknown preset")
    r = invoke("falsify", "--runs", str(tmp_path), "--preset", "mini", "--out", str(tmp_path / "r"))
    assert r.exit_code == 0


def test_doctor_runs(tmp_path):
    r = CliRunner().invoke(cli, ["doctor", "--out", str(tmp_path)])
    assert r.exit_code in (0, 1), r.output
    for name in ("docker daemon", "grader image", "gpu", "flash-attn", "memory", "disk"):
        assert name in r.output


def test_grade_command(tmp_path, problems):
    p = problems[0]
    rows = [{"id": p.id, "completion": f"```python\n{p.canonical_solution}\n```"}, {"id": p.id, "completion": "no"}]
    src, dst = tmp_path / "c.jsonl", tmp_path / "g.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = invoke("grade", "--in", str(src), "--out", str(dst), "--sandbox", "process")
    assert r.exit_code == 0, r.output
    graded = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [g["gt_correct"] for g in graded] == [True, False]
    assert [g["category"] for g in graded] == ["correct", "incorrect"]
    assert all(g["id"] == p.id and g["mode"] == p.mode for g in graded)
    # the rich summary table: its title, the problem's loophole-mode row and the totals row
    assert "graded 2 completion(s)" in r.output and "reward_hack" in r.output
    split = ([x.strip() for x in line.strip("│ ").split("│")] for line in r.output.splitlines())
    cells = {c[0]: c[1:] for c in split if len(c) == 6}     # mode, then one count per category
    assert cells[p.mode] == cells["all"] == ["1", "0", "0", "0", "1"]   # correct ... incorrect
    assert "mean reward 1.750" in r.output                    # (3.5 + 0) / 2


def test_grade_bad_input(tmp_path, problems):
    src = tmp_path / "c.jsonl"
    src.write_text('{"id": 123456789, "completion": "x"}\n')
    assert_one_line_error(invoke("grade", "--in", str(src), "--out", str(tmp_path / "g.jsonl"), "--sandbox",
                                 "process"), 1, "c.jsonl:1", "unknown problem id")
    src.write_text(json.dumps({"id": problems[0].id, "completion": "x"}) + "\nnot json\n")
    assert_one_line_error(invoke("grade", "--in", str(src), "--out", str(tmp_path / "g.jsonl")), 1, "c.jsonl:2",
                          "not JSON")
    assert not (tmp_path / "g.jsonl").exists()
    for args in (["--in", str(src)], ["--out", str(tmp_path / "g.jsonl")], [str(src), "--out", "g.jsonl"]):
        r = CliRunner().invoke(cli, ["grade", *args])
        assert r.exit_code == 2, r.output                    # --in and --out are both required; no positional


# --- data ------------------------------------------------------------------------------

@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """The real shared dir (it holds the pinned test split), an empty cache, and a fake download per test."""
    import sandbox.data as D
    cache = tmp_path / "cache"
    monkeypatch.setattr(D, "DATA_DIR", cache)
    calls = []

    def set_download(fn):
        def download(df, dest, timeout=60.0):
            calls.append(df.filename)
            return fn(df, dest)
        monkeypatch.setattr(D, "_download", download)
    return D, cache, calls, set_download


def _unreachable(df, dest):
    import sandbox.data as D
    try:
        raise OSError("Network is unreachable")
    except OSError as e:
        raise D.DataError(f"{df.filename}: download from {df.url} failed ({e})") from e


def test_data_verifies_test_and_warns_once_per_unreachable_train_file(data_dirs):
    D, cache, calls, set_download = data_dirs
    set_download(_unreachable)
    train = [df.filename for s, df in D.DATA_FILES.items() if s != "test"]
    assert train == ["leetcode_train_medhard_filtered.jsonl", "leetcode_train_medhard_holdout.jsonl"]
    r = invoke("data")
    assert r.exit_code == 0, r.output
    assert D.DATA_FILES["test"].git_blob in r.stdout and D.DATA_FILES["test"].sha256 in r.stdout
    warnings = r.stderr.strip().splitlines()
    assert len(warnings) == 2 and sorted(calls) == sorted(train)     # every split is tried
    for w, name in zip(warnings, train):
        assert w.startswith("warning: ") and name in w and "Network is unreachable" in w
    assert "needed by problem set(s) leetcode" in warnings[0] and "needed by problem set(s) none" in warnings[1]
    for name, src in D.local_files().items():   # the repository's own problem files (mini), with their pinned sha256
        assert f"{name}: " in r.stdout and f"sha256 {src.sha256} (verified; in this repository)" in r.stdout
    assert "mini_train.jsonl" in D.local_files() and "mini_eval.jsonl" in D.local_files()
    assert json.loads((cache / D.MANIFEST).read_text())["leetcode_test_medhard.jsonl"]["sha256"] == \
        D.DATA_FILES["test"].sha256


def _serve_rows(D, monkeypatch, set_download, bodies: dict[str, bytes]) -> None:
    """The fake download serves `bodies[split]`, pinned by its git blob id."""
    def fake(df, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(bodies[df.split])
        return dest
    for split, body in bodies.items():
        df = D.DATA_FILES[split]
        blob = hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
        monkeypatch.setitem(D.DATA_FILES, split, D.DataFile(split, df.filename, blob))
    set_download(fake)


def _rows_like_test(D, n: int, offset: int) -> list[dict]:
    rows = [json.loads(x) for x in D.ensure_data(("test",))["test"].read_text().splitlines()[:n]]
    for r in rows:
        r["id"] += offset           # other problems than the test split's
    return rows


def test_data_fetches_by_git_blob_and_records_sha256(data_dirs, monkeypatch):
    D, cache, calls, set_download = data_dirs
    _serve_rows(D, monkeypatch, set_download, {
        split: "".join(json.dumps(r) + "\n" for r in _rows_like_test(D, 2, off)).encode()
        for split, off in (("train", 100_000), ("train_holdout", 200_000))})
    r = invoke("data")
    assert r.exit_code == 0, r.output
    assert "(verified; 2 problems parsed)" in r.stdout
    record = json.loads((cache / D.MANIFEST).read_text())
    for split in ("train", "train_holdout"):
        df = D.DATA_FILES[split]
        digest = D.sha256_file(cache / df.filename)
        assert record[df.filename]["sha256"] == digest and record[df.filename]["git_blob"] == df.git_blob
        assert f"{split}: {cache / df.filename}  git blob {df.git_blob}  sha256 {digest} (verified; 2 problems " \
               "parsed)" in r.stdout


def test_data_wrong_bytes_are_fatal_naming_file_and_both_ids(data_dirs):
    D, cache, calls, set_download = data_dirs

    def fake(df, dest):     # the real _download's verification, on bytes that are not the pinned file
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("{}\n")
        D.verify(df, dest)
    set_download(fake)
    df = D.DATA_FILES["train"]
    assert_one_line_error(invoke("data"), 1, df.filename, "git blob id", D.git_blob_id(cache / df.filename),
                          f"pinned {df.git_blob}")


def test_data_test_split_failure_is_fatal(data_dirs, tmp_path, monkeypatch):
    D, cache, calls, set_download = data_dirs
    monkeypatch.setattr(D, "SHARED_DATA_DIR", tmp_path / "empty")
    set_download(_unreachable)
    assert_one_line_error(invoke("data"), 1, "test split", "leetcode_test_medhard.jsonl", "failed")


# --- where full trains and evaluates ------------------------------------------------------

def test_full_without_the_train_split_stops_before_any_model_loads(data_dirs, tmp_path, monkeypatch):
    import policy.model_loading as ML
    D, cache, calls, set_download = data_dirs

    def no_model(*a, **k):
        raise AssertionError("a model was loaded")
    monkeypatch.setattr(ML, "load_policy", no_model)
    monkeypatch.setattr(ML, "AutoModelForCausalLM", None, raising=False)
    for cmd in (["run", "--arm", BASELINE, "--seeds", "41"], ["sweep", "--arm", BASELINE, "--seeds", "41"]):
        r = invoke(*cmd, "--preset", "full", "--out", str(tmp_path / "runs"))
        assert_one_line_error(r, 1, "leetcode_train_medhard_filtered.jsonl", "`harness data`")
        assert r.stdout == ""                                  # nothing planned or printed before the refusal
    assert calls == [] and not (tmp_path / "runs").exists()    # no download tried, no run dir made


def test_dry_run_says_which_file_trains_and_which_evaluates(data_dirs, tmp_path):
    r = invoke("run", "--arm", BASELINE, "--seeds", "41", "--preset", "full", "--out", str(tmp_path), "--dry-run")
    assert r.exit_code == 0, r.output
    assert "problem set leetcode: trains leetcode_train_medhard_filtered.jsonl\n" in r.stdout
    assert "problem set leetcode: evaluates leetcode_test_medhard.jsonl (all of it)\n" in r.stdout
    assert "note: contamination" in r.stdout and "MISSING" in r.stdout and "`harness data`" in r.stdout
    r = invoke("run", "--arm", BASELINE, "--seeds", "41", "--preset", "smoke", "--out", str(tmp_path), "--dry-run")
    assert "problem set leetcode_test_partition: trains leetcode_test_medhard.jsonl, all but a 0.25" in r.stdout
    assert "MISSING" not in r.stdout


def test_data_names_every_bad_row_of_an_arriving_split(data_dirs, monkeypatch):
    """A pinned file can still hold rows the loader cannot use: `harness data` parses every row on arrival and
    names each bad one, instead of a crash in the middle of a preset."""
    D, cache, calls, set_download = data_dirs
    rows = _rows_like_test(D, 4, 100_000)
    del rows[1]["question"]
    rows[3]["gt_answer"] = ["assert Solution().f() in (1, 2)"]
    good = "".join(json.dumps(r) + "\n" for r in _rows_like_test(D, 1, 200_000)).encode()
    _serve_rows(D, monkeypatch, set_download, {"train": "".join(json.dumps(r) + "\n" for r in rows).encode(),
                                               "train_holdout": good})
    r = invoke("data")
    assert r.exit_code != 0
    assert "train: leetcode_train_medhard_filtered.jsonl: 1 bad row(s): leetcode_train_medhard_filtered.jsonl:2: " \
           "missing field 'question'" in r.output
    rows[1]["question"] = "q"
    _serve_rows(D, monkeypatch, set_download, {"train": "".join(json.dumps(r) + "\n" for r in rows).encode(),
                                               "train_holdout": good})
    (cache / D.DATA_FILES["train"].filename).unlink(missing_ok=True)
    r = invoke("data")
    assert r.exit_code != 0 and f"problem id {rows[3]['id']}: unsupported gt assert shape" in r.output


def test_help_config_prints_every_field_with_its_description():
    import dataclasses

    from policy.config import TrainConfig

    res = invoke("run", "--help-config")
    assert res.exit_code == 0, res.output
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata.get("help"), f"{f.name} has no description"
        assert f"{f.name} ({f.type}, default {f.default!r})" in res.output
    assert "the k3 KL(policy || reference) term" in res.output       # a description, not only the names
