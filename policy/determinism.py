"""Bit-reproducible builds, and the record of what decides the bits.

The builtin bases (policy/substrate.py) are built in a child process with a pinned numeric environment,
because the knobs that pick CPU kernels are read once, when torch / MKL / oneDNN load, so the process
that wants a build cannot re-pin itself once torch is imported:

    ATEN_CPU_CAPABILITY=default   ATen's scalar kernels. Measured: the smoke base's random init (normal_)
                                  differs in bits between the `default` and AVX2/AVX-512 kernels. `default`
                                  is the one path every x86-64 CPU runs (a higher cap silently falls back
                                  where the CPU lacks it).
    MKL_CBWR=COMPATIBLE           MKL's conditional-numerical-reproducibility mode: the same GEMM results on
                                  every x86 CPU MKL supports, whatever ISA it would otherwise dispatch to.
    ONEDNN_MAX_CPU_ISA=SSE41      oneDNN (mkldnn) kernels capped alike.
    one thread everywhere         reductions split by thread count sum in a different order.
    torch.use_deterministic_algorithms(True).

What stays outside: the library versions (the lock file pins them) and the build recipe (its hash names
the cache directory). `environment()` records the versions, the dispatched CPU path and the host CPU (model, ISA
flags: the pinned build reports the DEFAULT path on every host, and two hosts' mini bases probably differ,
REPRODUCE §2) in doctor, in every base's builtin.json and in every run's config.json.

    python -m policy.substrate <builtin name> [artifacts dir]   (what `ensure_builtin` runs)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandbox.paths import REPO_ROOT   # the checkout root: the child imports this harness, not an installed one

BUILD_THREADS = 1
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OMP_NUM_THREADS": str(BUILD_THREADS),
    "MKL_NUM_THREADS": str(BUILD_THREADS),
    "RAYON_NUM_THREADS": str(BUILD_THREADS),      # the tokenizers trainer
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONHASHSEED": "0",
}


CPUINFO = Path("/proc/cpuinfo")
# the x86 ISA extensions that pick torch / MKL / oneDNN kernels, in the order they arrived
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def host_cpu() -> dict[str, Any]:
    """The host CPU's model, its kernel-relevant ISA flags and a digest of all its flags (None where unreadable)."""
    try:
        fields = dict(line.split(":", 1) for line in CPUINFO.read_text().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return {"model": platform.processor() or None, "isa": None, "flags_sha256": None}
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    flags = fields.get("flags", "").split()
    return {"model": fields.get("model name"), "isa": [f for f in ISA_FLAGS if f in flags],
            "flags_sha256": hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:16]}


def environment() -> dict[str, Any]:
    """The versions that decide a run's numbers, the CPU kernel path torch dispatched to, and the host CPU."""
    import tokenizers
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch_threads": torch.get_num_threads(),
            "machine": platform.machine(), "host_cpu": host_cpu()}


def pinned_here() -> bool:
    """Is this process already running with the pinned environment (so it may build in place)?"""
    if not all(os.environ.get(k) == v for k, v in PINNED_ENV.items()):
        return False
    torch = sys.modules.get("torch")   # set after torch loaded, the env var changed nothing
    return torch is None or torch.backends.cpu.get_cpu_capability() == "DEFAULT"


@contextlib.contextmanager
def pinned_threads(n: int):
    """n intra-op CPU threads for the block, restored afterwards. Setting the count is itself part of the state:
    a process that never called torch.set_num_threads can round differently from one that set the count it
    already had (measured on mini's V extraction, REPRODUCE §2)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def deterministic():
    """Deterministic algorithms and BUILD_THREADS intra-op threads for the block; restored afterwards."""
    import torch

    old_det = torch.are_deterministic_algorithms_enabled()
    with pinned_threads(BUILD_THREADS):
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(old_det)


def build_pinned(name: str, artifacts_dir: Path | None = None) -> None:
    """Build builtin `name` in a child process with PINNED_ENV (its output streams through)."""
    env = {**os.environ, **PINNED_ENV,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    cmd = [sys.executable, "-m", "policy.substrate", name] + ([str(artifacts_dir)] if artifacts_dir else [])
    rc = subprocess.run(cmd, env=env, cwd=os.getcwd()).returncode
    if rc != 0:
        raise RuntimeError(f"building builtin:{name} in the pinned child process failed (exit code {rc}); "
                           f"its output is above; rerun alone with: {' '.join(cmd)}")
