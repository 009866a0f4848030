#!/usr/bin/env bash
# Regenerate the hash-locked environments from the loose requirements in pyproject.toml (the one source):
#   requirements/cpu.lock   torch's CPU build (+cpu wheel): CPU machines, CI, `make reproduce-mini`
#   requirements/cuda.lock  torch from PyPI with its CUDA wheels: GPU machines (`make reproduce`), and the
#                           fallback for a CPU machine that reaches PyPI but no source of the +cpu wheel
# Both for CPython 3.11 on x86-64 manylinux_2_28 (Debian 12's python3), with every transitive dependency and
# its sha256. Uses uv (installed into .venv by `make lock` if missing).
#   TORCH_CPU_SOURCE  where the +cpu wheel comes from: a --find-links folder, or the PyTorch CPU index (default)
set -euo pipefail
cd "$(dirname "$0")/.."
UV="${UV:-.venv/bin/uv}"
PYVER="${LOCK_PYTHON_VERSION:-3.11}"
PLATFORM="${LOCK_PLATFORM:-x86_64-manylinux_2_28}"
TORCH_CPU_SOURCE="${TORCH_CPU_SOURCE:-https://download.pytorch.org/whl/cpu}"
common=(pyproject.toml --extra dev --extra ray --generate-hashes --python-version "$PYVER"
        --python-platform "$PLATFORM" --no-header --quiet)
# setuptools builds the editable install of this project with --no-build-isolation (so it is locked too).
echo "setuptools>=68" >/tmp/rh-lock-build.in
if [ -d "$TORCH_CPU_SOURCE" ]; then cpu_src=(--find-links "$TORCH_CPU_SOURCE")
else cpu_src=(--extra-index-url "$TORCH_CPU_SOURCE" --index-strategy unsafe-best-match); fi
mkdir -p requirements
"$UV" pip compile "${common[@]}" /tmp/rh-lock-build.in "${cpu_src[@]}" -o requirements/cpu.lock
"$UV" pip compile "${common[@]}" /tmp/rh-lock-build.in -o requirements/cuda.lock
grep -q '^torch==.*+cpu' requirements/cpu.lock || { echo "lock: cpu.lock did not get torch's +cpu build" >&2; exit 1; }
echo "lock: $(grep -c '^[a-z]' requirements/cpu.lock) packages in requirements/cpu.lock, $(grep -c '^[a-z]' requirements/cuda.lock) in requirements/cuda.lock"
