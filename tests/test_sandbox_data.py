"""Data: pinned git blob ids and hashes, problem sets, clear errors (file, line, field), deterministic splits
and mode assignment."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

import sandbox.data as D
from sandbox.loopholes import MODES


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Empty shared/cache dirs, downloads impossible."""
    shared, cache = tmp_path / "shared", tmp_path / "cache"
    shared.mkdir()
    cache.mkdir()
    monkeypatch.setattr(D, "SHARED_DATA_DIR", shared)
    monkeypatch.setattr(D, "DATA_DIR", cache)

    def no_network(*a, **k):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(D.urllib.request, "urlopen", no_network)
    return shared, cache


@pytest.fixture(scope="module")
def real_rows():
    return D.read_rows(D.ensure_data(("test",))["test"])


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pin(monkeypatch, split: str, path: Path) -> None:
    df = D.DATA_FILES[split]
    monkeypatch.setitem(D.DATA_FILES, split, D.DataFile(df.split, path.name, D.git_blob_id(path),
                                                        D.sha256_file(path)))


def test_test_split_is_pinned_and_verified(problems):
    path = D.ensure_data(("test",))["test"]
    assert D.sha256_file(path) == D.DATA_FILES["test"].sha256 == D.data_hash("test")
    assert D.git_blob_id(path) == D.DATA_FILES["test"].git_blob
    assert len(problems) == 119 and len({p.id for p in problems}) == 119
    assert D.REPO_COMMIT in D.DATA_FILES["test"].url


def test_shared_dir_preferred_when_hash_matches(dirs, real_rows, monkeypatch):
    shared, cache = dirs
    f = _write(shared / "leetcode_test_medhard.jsonl", real_rows[:3])
    _pin(monkeypatch, "test", f)
    _write(cache / "leetcode_test_medhard.jsonl", real_rows[:2])  # wrong hash in the cache: ignored
    assert D.ensure_data(("test",))["test"] == f


def test_hash_mismatch_is_a_clear_error(dirs, real_rows, monkeypatch):
    shared, _ = dirs
    f = _write(shared / "leetcode_test_medhard.jsonl", real_rows[:3])
    _pin(monkeypatch, "test", f)
    f.write_text(f.read_text().replace("Solution", "Solutiom", 1))
    pinned = D.DATA_FILES["test"].git_blob
    with pytest.raises(D.DataError, match=rf"leetcode_test_medhard.jsonl: .* has git blob id "
                                          rf"{D.git_blob_id(f)}, pinned {pinned}"):
        D.ensure_data(("test",), download=False)
    with pytest.raises(D.DataError, match="download from https://raw.githubusercontent.com/ariahw/rl-rewardhacking/"):
        D.ensure_data(("test",))


def test_missing_split_is_a_loud_error(dirs):
    with pytest.raises(D.DataError, match="leetcode_test_medhard.jsonl.*failed"):
        D.ensure_data(("test",))
    with pytest.raises(D.DataError, match="unknown split"):
        D.ensure_data(("nope",))


def test_git_blob_id_matches_git_hash_object(tmp_path):
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello\n")       # `echo hello | git hash-object --stdin`
    assert D.git_blob_id(f) == "ce013625030ba8dba906f756967f9e9ca394464a"
    (tmp_path / "empty").write_bytes(b"")
    assert D.git_blob_id(tmp_path / "empty") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


class _Resp:
    def __init__(self, data: bytes):
        self.data = data

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def read(self, n=-1):
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_download_is_verified_by_git_blob_and_recorded(dirs, real_rows, monkeypatch):
    shared, cache = dirs
    good = "".join(json.dumps(r) + "\n" for r in real_rows[:3]).encode()
    wrong = good.replace(b"Solution", b"Solutiom", 1)
    blob, wrong_blob = (hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest() for b in (good, wrong))
    df = D.DataFile("train", "leetcode_train_medhard_filtered.jsonl", blob)     # pinned by blob id alone
    monkeypatch.setitem(D.DATA_FILES, "train", df)
    monkeypatch.setattr(D.urllib.request, "urlopen", lambda url, timeout=None: _Resp(wrong))
    with pytest.raises(D.DataError, match=rf"downloaded from {df.url}: leetcode_train_medhard_filtered.jsonl: .* "
                                          rf"has git blob id {wrong_blob}, pinned {blob}"):
        D.ensure_data(("train",))
    assert not any(cache.iterdir())                  # nothing unverified is left behind
    monkeypatch.setattr(D.urllib.request, "urlopen", lambda url, timeout=None: _Resp(good))
    path = D.ensure_data(("train",))["train"]
    assert path == cache / df.filename and path.read_bytes() == good
    entry = D.read_manifest()[df.filename]
    assert entry["git_blob"] == blob and entry["sha256"] == D.sha256_file(path) and entry["commit"] == D.REPO_COMMIT


def test_problem_sets_partition_or_two_files(dirs, real_rows, monkeypatch):
    shared, _ = dirs
    _pin(monkeypatch, "test", _write(shared / "leetcode_test_medhard.jsonl", real_rows[:12]))
    _pin(monkeypatch, "train", _write(shared / "leetcode_train_medhard_filtered.jsonl", real_rows[12:40]))
    part = D.load_problem_set("leetcode_test_partition")
    assert {p.id for p in part.train} | {p.id for p in part.eval} == {r["id"] for r in real_rows[:12]}
    assert not {p.id for p in part.train} & {p.id for p in part.eval} and part.pairs == part.train
    full = D.load_problem_set("leetcode")
    assert [p.id for p in full.train] == [r["id"] for r in real_rows[12:40]]      # the train file trains
    assert [p.id for p in full.eval] == [r["id"] for r in real_rows[:12]]         # the whole test file evaluates
    assert full.pairs == full.eval                   # the contamination the set's note states
    assert "contamination" in D.PROBLEM_SETS["leetcode"].note
    assert full.data_hash == f"train={D.DATA_FILES['train'].sha256},eval={D.DATA_FILES['test'].sha256}"
    with pytest.raises(D.DataError, match="unknown problem set 'nope'"):
        D.get_problem_set("nope")


def test_missing_train_split_names_the_file_and_the_command(dirs, real_rows, monkeypatch):
    shared, _ = dirs
    _pin(monkeypatch, "test", _write(shared / "leetcode_test_medhard.jsonl", real_rows[:12]))
    D.require_problem_set("leetcode_test_partition")
    with pytest.raises(D.DataError, match=r"needs leetcode_train_medhard_filtered.jsonl .*`harness data`"):
        D.require_problem_set("leetcode")


def test_a_local_file_entry_is_a_few_lines(tmp_path, real_rows, monkeypatch):
    f = _write(tmp_path / "mine.jsonl", real_rows[:10])
    monkeypatch.setattr(D, "REPO_ROOT", tmp_path)
    ps = D.ProblemSet("mine", train=D.LocalFile("mine.jsonl", D.sha256_file(f)), heldout_frac=0.3)
    monkeypatch.setitem(D.PROBLEM_SETS, "mine", ps)
    loaded = D.load_problem_set("mine")
    assert len(loaded.train) + len(loaded.eval) == 10 and loaded.data_hash == D.sha256_file(f)
    bad = D.ProblemSet("mine", D.LocalFile("mine.jsonl", "0" * 64), heldout_frac=0.3)
    monkeypatch.setitem(D.PROBLEM_SETS, "mine", bad)
    with pytest.raises(D.DataError, match=rf"mine.jsonl: sha256 {D.sha256_file(f)}, pinned 0{{64}}"):
        D.load_problem_set("mine")


@pytest.mark.parametrize("field", list(D.REQUIRED_FIELDS) + ["prompt_metadata.starter_code"])
def test_missing_field_names_file_line_and_field(tmp_path, real_rows, field):
    rows = [dict(r) for r in real_rows[:3]]
    if field == "prompt_metadata.starter_code":
        rows[1]["prompt_metadata"] = {}
    else:
        del rows[1][field]
    f = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(D.DataError, match=rf"bad.jsonl:2: missing field '{field}'"):
        D.read_rows(f)


def test_ill_typed_field_and_bad_asserts(tmp_path, real_rows):
    rows = [dict(r) for r in real_rows[:2]]
    rows[0]["id"] = "3243"
    with pytest.raises(D.DataError, match=r"bad.jsonl:1: field 'id' is str, expected int"):
        D.read_rows(_write(tmp_path / "bad.jsonl", rows))
    rows = [dict(r) for r in real_rows[:2]]
    rows[1]["gt_answer"] = ["assert Solution().f() in (1, 2)"]
    with pytest.raises(D.DataError, match=rf"problem id {rows[1]['id']}: unsupported gt assert shape"):
        D.problems_from_rows(D.read_rows(_write(tmp_path / "bad.jsonl", rows)), "bad.jsonl")
    (tmp_path / "junk.jsonl").write_text('{"id": 1}\nnot json\n')
    with pytest.raises(D.DataError, match="junk.jsonl:1: missing field"):
        D.read_rows(tmp_path / "junk.jsonl")


def test_modes_are_balanced_and_deterministic(problems, real_rows):
    counts = Counter(p.mode for p in problems)
    assert set(counts) == set(MODES) and max(counts.values()) - min(counts.values()) <= 1
    again = D.problems_from_rows(list(reversed(real_rows)))
    assert {p.id: p.mode for p in again} == {p.id: p.mode for p in problems}


def test_split_is_deterministic_stratified_and_disjoint(problems):
    train, held = D.split_problems(problems, 0.25)
    train2, held2 = D.split_problems(list(reversed(problems)), 0.25)
    assert [p.id for p in train] == [p.id for p in train2] and [p.id for p in held] == [p.id for p in held2]
    assert not {p.id for p in train} & {p.id for p in held}
    assert len(train) + len(held) == len(problems)
    assert abs(len(held) - 0.25 * len(problems)) <= len(MODES)
    assert [p.mode for p in held[:4]] == list(MODES)  # interleaved: any prefix covers every mode
    assert D.split_problems(problems, 0.0)[1] == []


def test_problems_are_hashable_and_typed(problems):
    assert len(set(problems)) == 119 and {problems[0]: 1}[problems[0]] == 1
    p = problems[0]
    assert isinstance(p.prompt, tuple) and isinstance(p.gt_answer, tuple)
    assert p.func_name == f"Solution().{p.method_name}" and p.method_name in p.starter_code


def test_every_bad_row_is_named_not_just_the_first(tmp_path, real_rows):
    rows = [dict(r) for r in real_rows[:5]]
    del rows[1]["question"]
    rows[3]["id"] = "x"
    f = tmp_path / "bad.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    with pytest.raises(D.DataError, match=r"bad.jsonl: 3 bad row\(s\): bad.jsonl:2: missing field 'question'; "
                                          r"bad.jsonl:4: field 'id' is str.*; bad.jsonl:6: not JSON"):
        D.read_rows(f)
    rows = [dict(r) for r in real_rows[:3]]
    for r in rows[1:]:
        r["gt_answer"] = ["assert Solution().f() in (1, 2)"]
    with pytest.raises(D.DataError, match=rf"2 bad row.*problem id {rows[1]['id']}.*problem id {rows[2]['id']}"):
        D.problems_from_rows(D.read_rows(_write(tmp_path / "bad2.jsonl", rows)), "bad2.jsonl")


def test_a_forced_mode_set_gives_every_problem_that_mode_and_its_own_data_hash():
    from sandbox.loopholes import MODE_RUN_TESTS, build_prompt

    ps = D.ProblemSet(name="t_rt", train="test", heldout_frac=0.25, mode=MODE_RUN_TESTS)
    D.register_problem_set(ps)
    try:
        rt, own = D.load_problem_set("t_rt"), D.load_problem_set("leetcode_test_partition")
        assert {p.mode for p in rt.all} == {MODE_RUN_TESTS} and len({p.mode for p in own.all}) == len(MODES)
        assert rt.data_hash == own.data_hash + ",mode=run_tests"
        assert all("run_tests()" in build_prompt(p)[-1]["content"] for p in rt.train)
        assert all(p.mode != MODE_RUN_TESTS for p in D.problems_by_id().values() if p.id == own.all[1].id
                   and own.all[1].mode != MODE_RUN_TESTS)      # grading by id keeps each problem's own mode
    finally:
        del D.PROBLEM_SETS["t_rt"]
    assert D.get_problem_set("leetcode_rt").mode == MODE_RUN_TESTS
