#!/usr/bin/env bash
# Build the pinned grader image (`make image`; run `make data wheelhouse` first, make does).
#
#   1. base: $BASE_IMAGE if given; else the Dockerfile's digest-pinned python:3.11-slim if it is present or
#      can be pulled; else the offline debootstrap base (rh-base:bookworm, built here if missing), by image ID.
#   2. stage the build context build/image/: sandbox/*.py, data/*.jsonl, pool/ (artifacts/pool if it
#      exists), wheelhouse/, requirements-image.txt; nothing else reaches the daemon.
#   3. docker build (classic builder, no network) with the data / pool / code hashes as labels; tag
#      rh-grader:<worker hash>-<sandbox hash> and rh-grader:latest (the executor's default,
#      sandbox.docker_executor.IMAGE). NO_CACHE=1 rebuilds every layer.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
STAGE="${STAGE_DIR:-build/image}"
log() { echo "[image] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker daemon answers (start dockerd; .ci/run shows how)"
t0=$(date +%s)

# --- where things are (one source: sandbox.paths, sandbox.data, sandbox.docker_executor) -----------
# The data files baked in are the registry's splits that verify here against their pinned git blob ids (no
# download): the test split must, a train split not on this machine is left out; the repository's own problem
# files (sandbox.data.local_files: mini) always. Labels: rh.data.sha256 (of every baked file) and rh.data.git_blob.
mkdir -p "$(dirname "$STAGE")"
"$PYTHON" - >"$STAGE.where" <<'PY' || die "locating data failed (run \`make data\` first)"
import sys
from sandbox.paths import ARTIFACTS_DIR
from sandbox.data import DATA_FILES, DataError, ensure_data
from sandbox.docker_executor import IMAGE
print("IMAGE", IMAGE)
print("POOL", ARTIFACTS_DIR / "pool")
for split, df in DATA_FILES.items():
    try:
        path = ensure_data((split,), download=False)[split]
    except DataError as e:
        if split == "test":
            sys.exit(f"test split: {e}")
        print(f"[image] data: leaving out split {split!r}: {str(e)[:160]}", file=sys.stderr)
        continue
    print("DATA", path)
from sandbox.data import REPO_ROOT, local_files   # the repository's own problem sets (mini), pinned by sha256
for name, src in local_files().items():
    print("DATA", REPO_ROOT / src.path)
PY
IMAGE=$(sed -n 's/^IMAGE //p' "$STAGE.where")
POOL_DIR=$(sed -n 's/^POOL //p' "$STAGE.where")
mapfile -t DATA_FILES < <(sed -n 's/^DATA //p' "$STAGE.where")
rm -f "$STAGE.where"
IMAGE_REPO="${IMAGE%%:*}"

# --- 1. base ----------------------------------------------------------------------------------------
NOMINAL=$(sed -n 's/^ARG BASE_IMAGE=//p' Dockerfile | head -n1)
if [ -n "${BASE_IMAGE:-}" ]; then
    BASE_NAME="$BASE_IMAGE"
    log "base: $BASE_IMAGE (given)"
elif docker image inspect "$NOMINAL" >/dev/null 2>&1; then
    BASE_IMAGE="$NOMINAL"; BASE_NAME="python:3.11-slim"
    log "base: $NOMINAL (pinned digest, present locally)"
elif timeout "${PULL_TIMEOUT:-120}" docker pull -q "$NOMINAL" >/dev/null 2>"$STAGE.pull.err"; then
    BASE_IMAGE="$NOMINAL"; BASE_NAME="python:3.11-slim"
    log "base: $NOMINAL (pinned digest, pulled)"
else
    log "base: cannot pull $NOMINAL ($(tr '\n' ' ' < "$STAGE.pull.err" 2>/dev/null | cut -c1-200)); using the offline debootstrap base"
    if ! docker image inspect rh-base:bookworm >/dev/null 2>&1; then
        log "rh-base:bookworm missing: building it (make base-image-offline)"
        bash sandbox/image/build_base_offline.sh >/dev/null
    fi
    BASE_IMAGE=$(docker image inspect -f '{{.Id}}' rh-base:bookworm)
    BASE_NAME=$(docker image inspect -f '{{range .RepoTags}}{{.}} {{end}}' "$BASE_IMAGE" | tr ' ' '\n' | grep -m1 -- '-[0-9]\{8\}$' || echo rh-base:bookworm)
    log "base: $BASE_NAME = $BASE_IMAGE (offline, pinned by image ID)"
fi
rm -f "$STAGE.pull.err"

# --- 2. stage the context ------------------------------------------------------------------------------
rm -rf "$STAGE" && mkdir -p "$STAGE/data" "$STAGE/pool"
# code: the package's .py files only (no caches, no image scripts' build outputs)
find sandbox -name '*.py' -not -path '*/__pycache__/*' | while read -r f; do install -D -m 644 "$f" "$STAGE/$f"; done
cp "${DATA_FILES[@]}" "$STAGE/data/"
if compgen -G "$POOL_DIR/*.jsonl" >/dev/null; then
    cp "$POOL_DIR"/*.jsonl "$STAGE/pool/"
    log "pool: baking in $(ls "$STAGE/pool" | wc -l) file(s) from $POOL_DIR ($(du -sh "$STAGE/pool" | cut -f1))"
else
    log "pool: $POOL_DIR absent, image carries no teacher pool (rebuild after \`make artifacts\`)"
fi
compgen -G "wheelhouse/*.whl" >/dev/null || die "wheelhouse/ empty: run \`make wheelhouse\` first"
cp -r wheelhouse "$STAGE/wheelhouse"
cp sandbox/image/requirements-image.txt "$STAGE/"

hashes() { (cd "$1" && for f in $(find . -maxdepth 1 -type f -name '*.jsonl' -printf '%P\n' | LC_ALL=C sort); do
    printf '%s=%s,' "$f" "$(sha256sum "$f" | cut -d' ' -f1)"; done) | sed 's/,$//'; }
DATA_SHA256=$(hashes "$STAGE/data")
DATA_GIT_BLOB=$("$PYTHON" -c 'import sys; from pathlib import Path; from sandbox.data import git_blob_id
print(",".join(f"{p.name}={git_blob_id(p)}" for p in sorted(Path(sys.argv[1]).glob("*.jsonl"))))' "$STAGE/data")
POOL_SHA256=$(hashes "$STAGE/pool")
read -r SANDBOX_SHA256 WORKER_SHA256 < <("$PYTHON" -c 'import sys; from pathlib import Path
from sandbox.docker_executor import code_hash, worker_hash
print(code_hash(sys.argv[1]), worker_hash(Path(sys.argv[1]) / "worker.py"))' "$STAGE/sandbox")
log "data: $DATA_SHA256 (git blobs $DATA_GIT_BLOB)"
log "code: sandbox/ sha256 $SANDBOX_SHA256, worker.py sha256 $WORKER_SHA256"

# --- 3. build -------------------------------------------------------------------------------------------
TAG="$IMAGE_REPO:${WORKER_SHA256:0:12}-${SANDBOX_SHA256:0:8}"
tb=$(date +%s)
DOCKER_BUILDKIT=0 docker build --network none ${NO_CACHE:+--no-cache} -f Dockerfile -t "$TAG" -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg BASE_NAME="$BASE_NAME" \
    --build-arg DATA_SHA256="$DATA_SHA256" --build-arg DATA_GIT_BLOB="$DATA_GIT_BLOB" \
    --build-arg POOL_SHA256="$POOL_SHA256" \
    --build-arg SANDBOX_SHA256="$SANDBOX_SHA256" --build-arg WORKER_SHA256="$WORKER_SHA256" \
    "$STAGE" >"$STAGE.build.log" 2>&1 || { tail -n 40 "$STAGE.build.log" >&2; die "docker build failed (full log: $STAGE.build.log)"; }
# older builds: drop their tags (layers shared with this one stay; an image a container still uses stays)
for old in $(docker images "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}' | grep -vxF -e "$IMAGE" -e "$TAG"); do
    docker rmi "$old" >/dev/null 2>&1 || true
done
id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
log "built $IMAGE = $TAG ($id): $((size / 1024 / 1024)) MiB; docker build $(( $(date +%s) - tb )) s, total $(( $(date +%s) - t0 )) s"
"$PYTHON" -c 'import json; from sandbox.docker_executor import image_status; print(json.dumps(image_status(), indent=1))' >&2
echo "$IMAGE"
