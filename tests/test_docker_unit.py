"""The docker backend's pieces that need no daemon: hashes, labels, the exec stream demux, the pins."""
from __future__ import annotations

import re
import socket
import struct
import threading
from pathlib import Path

import pytest

from sandbox import docker_executor as dx

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------------- hashes and labels
def test_code_hash_tracks_content_paths_and_ignores_caches(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    h0 = dx.code_hash(tmp_path)
    assert dx.code_hash(tmp_path) == h0                        # deterministic
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "c.py").write_text("junk")
    (tmp_path / "notes.txt").write_text("not code")
    assert dx.code_hash(tmp_path) == h0                        # caches and non-.py files do not count
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    h1 = dx.code_hash(tmp_path)
    assert h1 != h0                                            # one byte changed
    (tmp_path / "sub" / "b.py").rename(tmp_path / "b.py")
    assert dx.code_hash(tmp_path) != h1                        # same bytes, different path


def test_worker_hash_is_sha256_of_the_worker_source():
    import hashlib

    assert dx.worker_hash() == hashlib.sha256((REPO / "sandbox" / "worker.py").read_bytes()).hexdigest()


def test_parse_hash_list_roundtrips_the_label_format():
    assert dx._parse_hash_list("a.jsonl=ab12,b.jsonl=cd34") == {"a.jsonl": "ab12", "b.jsonl": "cd34"}
    assert dx._parse_hash_list("") == {} and dx._parse_hash_list(None) == {}


def test_pinned_hashes_come_from_the_data_registry():
    from sandbox.data import DATA_FILES, local_files

    pinned = dx._pinned_data_sha256()
    assert pinned["leetcode_test_medhard.jsonl"] == DATA_FILES["test"].sha256
    assert set(pinned) == {f.filename for f in DATA_FILES.values()} | set(local_files())
    assert all(pinned[name] == src.sha256 for name, src in local_files().items()) and local_files()   # mini's


def test_image_status_without_a_daemon_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    monkeypatch.delenv("RH_DOCKER_SKIP_REASON", raising=False)
    st = dx.image_status()
    assert st["daemon"] is False and st["ok"] is False and st["present"] is False
    assert "no Docker daemon" in st["reason"] and st["daemon_error"]
    ok, why = dx.docker_available()
    assert ok is False and why == st["reason"]
    # .ci/run passes down why dockerd could not start; the skip message then carries it
    monkeypatch.setenv("RH_DOCKER_SKIP_REASON", "dockerd could not start: test")
    assert dx.image_status()["reason"] == "dockerd could not start: test"


# ----------------------------------------------------------------------------------- the pins
def test_image_requirements_are_all_hash_locked():
    text = (REPO / "sandbox" / "image" / "requirements-image.txt").read_text()
    reqs = [r for r in re.sub(r"\\\n", " ", text).splitlines() if r.strip() and not r.lstrip().startswith("#")]
    assert reqs, "requirements-image.txt lists nothing"
    for r in reqs:
        assert re.match(r"^[A-Za-z0-9_.\-]+==[^ ]+ ", r), f"not pinned with ==: {r}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", r), f"no sha256 hash: {r}"


def test_dockerfile_pins_its_base_by_digest_and_runs_non_root():
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M)
    assert base and re.search(r"@sha256:[0-9a-f]{64}$", base.group(1)), "base image not pinned by digest"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0", "0:0")
    assert "--no-index" in text and "--require-hashes" in text   # offline, hash-checked install


# ----------------------------------------------------------------------------------- exec stream demux
class _FakeAPI:
    """Just enough of docker.APIClient for ExecProcess: the exec's attached stream is one end of a socketpair."""

    def __init__(self, sock, exit_code=3):
        self.sock, self.exit_code, self.created = sock, exit_code, []

    def exec_create(self, cid, cmd, **kw):
        self.created.append((cid, cmd, kw))
        return {"Id": "e" * 64}

    def exec_start(self, exec_id, socket=False):
        assert socket
        return self.sock

    def exec_inspect(self, exec_id):
        return {"Running": False, "ExitCode": self.exit_code}


class _FakeContainer:
    def __init__(self, api):
        self.id = "c" * 64
        self.client = type("C", (), {"api": api})()


def _readline(stream, timeout: float) -> bytes | None:
    """A line from a pipe, b'' at EOF, None on timeout (what the executor client does with the worker)."""
    import os
    import selectors
    import time

    buf = stream.__dict__.setdefault("_test_buf", bytearray()) if hasattr(stream, "__dict__") else bytearray()
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(stream.fileno(), selectors.EVENT_READ)
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if sel.select(left):
                chunk = os.read(stream.fileno(), 1 << 20)
                if not chunk:
                    return b""
                buf += chunk
        line, rest = buf.split(b"\n", 1)
        buf[:] = rest
        return line + b"\n"


def _frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_exec_process_demuxes_stdout_from_stderr_and_is_popen_shaped():
    ours, theirs = socket.socketpair()
    api = _FakeAPI(ours, exit_code=3)
    proc = dx.ExecProcess(_FakeContainer(api), ["python3", "-S", "w.py"], environment={"A": "1"})
    assert api.created[0][1] == ["python3", "-S", "w.py"] and api.created[0][2]["stdin"] is True

    big = b"x" * 200_000 + b"\n"                               # larger than a pipe buffer
    wire = (_frame(1, b'{"hello": 1}\n') + _frame(2, b"warning: on stderr\n") + _frame(1, b"part") +
            _frame(1, b"ial\n") + _frame(1, big))

    def feed():  # byte-sized and odd-sized writes: headers and payloads split anywhere
        for i in range(0, 64):
            theirs.sendall(wire[i:i + 1])
        for i in range(64, len(wire), 7919):
            theirs.sendall(wire[i:i + 7919])

    t = threading.Thread(target=feed)
    t.start()
    assert _readline(proc.stdout, 10) == b'{"hello": 1}\n'
    assert _readline(proc.stdout, 10) == b"partial\n"
    assert _readline(proc.stdout, 10) == big
    t.join()
    assert proc.poll() is None                                 # stream still open: running

    proc.stdin.write(b"request\n")
    proc.stdin.flush()
    assert theirs.recv(100) == b"request\n"
    proc.stdin.close()
    assert theirs.recv(100) == b""                             # the worker sees EOF on stdin

    theirs.close()                                             # the worker exits: stream ends
    assert _readline(proc.stdout, 10) == b""
    assert proc.wait(timeout=10) == 3 and proc.poll() == 3
    assert b"warning: on stderr" in proc.stderr.read()
