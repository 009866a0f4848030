"""Data: pinned hashes, clear errors (file, line, field), deterministic splits and mode assignment."""
from __future__ import annotations

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
    monkeypatch.setitem(D.DATA_FILES, split, D.DataFile(df.split, path.name, D.sha256_file(path)))


def test_test_split_is_pinned_and_verified(problems):
    path = D.ensure_data(("test",))["test"]
    assert D.sha256_file(path) == D.DATA_FILES["test"].sha256 == D.data_hash("test")
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
    with pytest.raises(D.DataError, match=r"leetcode_test_medhard.jsonl: hash mismatch, pinned [0-9a-f]{64}"):
        D.ensure_data(("test",), download=False)
    with pytest.raises(D.DataError, match="download from https://raw.githubusercontent.com/ariahw/rl-rewardhacking/"):
        D.ensure_data(("test",))


def test_missing_split_is_a_loud_error(dirs):
    with pytest.raises(D.DataError, match="leetcode_test_medhard.jsonl.*failed"):
        D.ensure_data(("test",))
    with pytest.raises(D.DataError, match="unknown split"):
        D.ensure_data(("nope",))


def test_unpinned_train_files_are_refused_unless_allowed(dirs, real_rows, caplog):
    shared, _ = dirs
    assert D.DATA_FILES["train"].sha256 is None
    _write(shared / "leetcode_train_medhard_filtered.jsonl", real_rows[:4])
    with pytest.raises(D.DataError, match="no pinned sha256.*allow_unpinned"):
        D.ensure_data(("train",))
    assert D.ensure_data(("train",), allow_unpinned=True)["train"].name == "leetcode_train_medhard_filtered.jsonl"
    assert "UNPINNED" in caplog.text


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
