"""Grading fails closed: without isolation the process backend refuses unless the user opted in."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from harness.cli import cli
import sandbox.backends as BK
from sandbox.executors import ALLOW_UNSANDBOXED_ENV, Job, ProcessExecutor, UnsandboxedError
import sandbox.executors as E

HELLO = Job(id="hello", code="print('hi')")


@pytest.fixture
def no_bwrap(monkeypatch):
    """A machine without bubblewrap, and no opt-in in the environment."""
    monkeypatch.setattr(E, "bwrap_command", lambda workers: None)
    monkeypatch.delenv(ALLOW_UNSANDBOXED_ENV, raising=False)


def _assert_refusal_line(text: str) -> None:
    assert "\n" not in text.strip(), text
    for needed in ("bubblewrap", "Docker", "--allow-unsandboxed", f"{ALLOW_UNSANDBOXED_ENV}=1"):
        assert needed in text, (needed, text)


@pytest.mark.parametrize("bwrap,why", [
    (None, "not found"),                    # no bubblewrap on the machine
    (["/bin/false"], "did not start"),      # bubblewrap that cannot start, e.g. no user namespaces
])
def test_missing_or_broken_bwrap_refuses_to_grade(no_bwrap, monkeypatch, bwrap, why):
    monkeypatch.setattr(E, "bwrap_command", lambda workers: bwrap)
    with ProcessExecutor(workers=1) as ex, pytest.raises(UnsandboxedError) as err:
        ex.run(HELLO)
    _assert_refusal_line(str(err.value))
    assert why in str(err.value)


def test_isolation_none_needs_the_opt_in_too(monkeypatch):
    monkeypatch.delenv(ALLOW_UNSANDBOXED_ENV, raising=False)
    with ProcessExecutor(workers=1, isolation="none") as ex, pytest.raises(UnsandboxedError):
        ex.run(HELLO)


@pytest.mark.parametrize("how", ["env", "argument"])
def test_opt_in_grades_with_plain_rlimits_and_says_so(no_bwrap, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(ALLOW_UNSANDBOXED_ENV, "1")
    with ProcessExecutor(workers=1, allow_unsandboxed=True if how == "argument" else None) as ex:
        info = ex.start()
        r = ex.run(HELLO)
    assert r.status == "ok" and r.stdout == "hi\n"
    assert info["backend"] == "process" and info["isolated_by"] == "none" and "NOT isolated" in info["detail"]


def test_bwrap_requested_explicitly_is_never_replaced_by_plain(no_bwrap, monkeypatch):
    monkeypatch.setenv(ALLOW_UNSANDBOXED_ENV, "1")
    with ProcessExecutor(workers=1, isolation="bwrap") as ex, pytest.raises(E.ExecutorError, match="bwrap"):
        ex.run(HELLO)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_start_reports_bubblewrap_when_it_works(monkeypatch):
    monkeypatch.delenv(ALLOW_UNSANDBOXED_ENV, raising=False)
    with ProcessExecutor(workers=1) as ex:
        assert ex.start()["isolated_by"] == "bubblewrap"


def _completions(tmp_path, problems):
    p = problems[0]
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"id": p.id, "completion": f"```python\n{p.canonical_solution}\n```"}) + "\n")
    return path


def test_cli_grade_refuses_in_one_line_and_runs_with_the_flag(no_bwrap, tmp_path, problems, monkeypatch):
    src, out = _completions(tmp_path, problems), tmp_path / "out.jsonl"
    args = ["grade", "--in", str(src), "--out", str(out), "--sandbox", "process", "--workers", "1"]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code == 1 and not out.exists()
    line = refused.output.strip()
    assert line.startswith("Error: refusing to grade without isolation")
    _assert_refusal_line(line)

    monkeypatch.setenv(ALLOW_UNSANDBOXED_ENV, "")   # restored after the test: the flag sets it in-process
    allowed = CliRunner().invoke(cli, args[:1] + ["--allow-unsandboxed"] + args[1:])
    assert allowed.exit_code == 0, allowed.output
    assert json.loads(out.read_text())["category"] == "correct"


@pytest.mark.parametrize("command", ["run", "sweep", "grade", "build-pool"])
def test_every_grading_command_takes_the_flag(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert "--allow-unsandboxed" in res.output


def test_doctor_row_fails_when_grading_would_refuse(no_bwrap, monkeypatch):
    from harness.doctor import FAIL, WARN, check_isolation
    monkeypatch.setattr(BK, "docker_available", lambda: (False, "no daemon"))
    row = check_isolation()
    assert row.status == FAIL and "refuse" in row.detail and "--allow-unsandboxed" in row.fix
    monkeypatch.setenv(ALLOW_UNSANDBOXED_ENV, "1")
    row = check_isolation()
    assert row.status == WARN and row.detail.startswith("NONE")


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_doctor_row_names_bubblewrap(monkeypatch):
    from harness.doctor import OK, check_isolation
    monkeypatch.setattr(BK, "docker_available", lambda: (False, "no daemon"))
    row = check_isolation()
    assert row.status == OK and row.detail.startswith("bubblewrap")


def test_doctor_prints_brackets_in_fixes_verbatim(monkeypatch):
    """rich used to read `[ray]` in `pip install -e '.[ray]'` as markup and print `pip install -e '.'`."""
    import harness.doctor as D
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(D, "run_checks", lambda out: [D.Check("ray (optional)", D.OK, "not [b]installed[/b]",
                                                              "pip install -e '.[ray]'")])
    res = CliRunner().invoke(cli, ["doctor"])
    assert res.exit_code == 0, res.output
    assert "pip install -e '.[ray]'" in res.output and "not [b]installed[/b]" in res.output


def test_doctor_records_the_versions_that_matter():
    import torch

    from harness.doctor import check_python
    row = check_python()
    for needed in ("python ", "torch ", "transformers ", "tokenizers ", torch.backends.cpu.get_cpu_capability()):
        assert needed in row.detail, (needed, row.detail)


def test_harness_run_refuses_before_any_training(no_bwrap, tmp_path, monkeypatch):
    monkeypatch.setattr(BK, "docker_available", lambda: (False, "no daemon"))
    res = CliRunner().invoke(cli, ["run", "--arm", "vanilla", "--seeds", "41", "--preset", "smoke",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 1
    assert "refusing to grade without isolation" in res.output
    run_dir = tmp_path / "smoke" / "vanilla" / "seed41"
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoints").exists()


def test_the_subprocess_backend_is_no_way_around_the_refusal(monkeypatch):
    monkeypatch.delenv(ALLOW_UNSANDBOXED_ENV, raising=False)
    with pytest.raises(UnsandboxedError):
        BK.make_executor("subprocess", workers=1).run(HELLO)
    assert BK.make_executor("subprocess", workers=1, allow_unsandboxed=True).run(HELLO).stdout == "hi\n"
