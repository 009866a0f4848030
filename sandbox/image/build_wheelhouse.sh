#!/usr/bin/env bash
# Download the grader image's hash-locked wheels into wheelhouse/ (the only network step of `make image`).
# pip verifies every file against the --hash lines of requirements-image.txt; a mismatch fails the build.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQ=sandbox/image/requirements-image.txt
OUT="${WHEELHOUSE:-wheelhouse}"
PYTHON="${PYTHON:-python3}"
log() { echo "[wheelhouse] $*" >&2; }

mkdir -p "$OUT"
# Wheels only, for the image's interpreter (CPython 3.11), never the host's; no dependency resolution
# beyond the lock (--no-deps: every wheel must be listed, with its hash).
"$PYTHON" -m pip download --require-hashes --no-deps --only-binary=:all: \
    --implementation cp --python-version 3.11 --platform manylinux2014_x86_64 --platform any \
    --dest "$OUT" -r "$REQ" >&2
( cd "$OUT" && sha256sum -- *.whl | LC_ALL=C sort -k2 > SHA256SUMS )
log "$(wc -l < "$OUT/SHA256SUMS") wheel(s) in $OUT:"
cat "$OUT/SHA256SUMS" >&2
