"""Builtin bases are bit-reproducible whatever the launching process's threads and CPU kernel path."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from policy.determinism import PINNED_ENV, REPO_ROOT, pinned_here

# Launched with its own threads / kernel path: builds smoke through ensure_builtin (the pinned child) and,
# as the control, with build_smoke in this unpinned process.
LAUNCHER = r"""
import hashlib, json, sys, tempfile
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[2]))
from policy.determinism import pinned_here
from policy.substrate import build_smoke, builtin_manifest, ensure_builtin
assert not pinned_here()
path = ensure_builtin("smoke", artifacts_dir=Path(sys.argv[1]))
control = Path(tempfile.mkdtemp())
build_smoke(control)
sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
print(json.dumps({"path": str(path), "weights": sha(path / "model.safetensors"),
                  "tokenizer": sha(path / "tokenizer.json"), "manifest": builtin_manifest(path),
                  "capability": torch.backends.cpu.get_cpu_capability(),
                  "unpinned_weights": sha(control / "model.safetensors")}))
"""


def _launch(tmp_path, name: str, threads: int, capability: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), ATEN_CPU_CAPABILITY=capability,
               PYTHONPATH=str(REPO_ROOT))
    out = subprocess.run([sys.executable, "-c", LAUNCHER, str(tmp_path / name), str(threads)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_smoke_base_is_bit_identical_across_threads_and_kernel_paths(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from policy.adapter import model_hash
    a = _launch(tmp_path, "a", threads=1, capability="default")
    b = _launch(tmp_path, "b", threads=2, capability="avx2")
    assert a["capability"] == "DEFAULT"
    assert a["path"] != b["path"]                        # two separate builds, not one cache hit
    assert a["weights"] == b["weights"] and a["tokenizer"] == b["tokenizer"]
    assert a["manifest"]["weights_sha256"] == b["manifest"]["weights_sha256"] == a["weights"]
    assert a["manifest"]["built_with"]["cpu_capability"] == b["manifest"]["built_with"]["cpu_capability"] == "DEFAULT"
    ma, mb = (AutoModelForCausalLM.from_pretrained(r["path"]) for r in (a, b))
    assert model_hash(ma) == model_hash(mb)
    for (na, pa), (nb, pb) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert na == nb and torch.equal(pa, pb), na
    if b["capability"] != "DEFAULT":   # the control: unpinned, the kernel path changes the init's bits
        assert a["unpinned_weights"] != b["unpinned_weights"]


def test_pinned_here_needs_the_env_and_torch_loaded_under_it(monkeypatch):
    import torch
    for k, v in PINNED_ENV.items():
        monkeypatch.setenv(k, v)
    # this process loaded torch before the env was set: the kernel path it dispatches to is whatever it is
    assert pinned_here() == (torch.backends.cpu.get_cpu_capability() == "DEFAULT")
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    assert not pinned_here()


def test_the_cache_key_covers_the_pins(monkeypatch):
    import policy.determinism as D
    from policy.substrate import _build_dir
    before, _ = _build_dir("smoke", {"x": 1})
    monkeypatch.setattr(D, "PINNED_ENV", {**D.PINNED_ENV, "ATEN_CPU_CAPABILITY": "avx2"})
    after, _ = _build_dir("smoke", {"x": 1})
    assert before != after


def test_environment_records_the_host_cpu(monkeypatch, tmp_path):
    """A base or run that differs across machines must say which CPU it came from: the pinned build records the
    DEFAULT kernel path whatever the host, so the host's model and ISA flags are recorded beside it."""
    from policy import determinism

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n\n"
                       "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n")
    monkeypatch.setattr(determinism, "CPUINFO", cpuinfo)
    host = determinism.environment()["host_cpu"]
    assert host["model"] == "Test CPU 9000"
    assert host["isa"] == ["sse4_2", "avx", "avx2", "fma", "avx512f"]
    other = tmp_path / "other"
    other.write_text(cpuinfo.read_text().replace(" avx512f", ""))
    monkeypatch.setattr(determinism, "CPUINFO", other)
    assert determinism.environment()["host_cpu"]["flags_sha256"] != host["flags_sha256"]
    monkeypatch.setattr(determinism, "CPUINFO", tmp_path / "absent")            # not Linux: still a record
    assert determinism.environment()["host_cpu"]["isa"] is None
