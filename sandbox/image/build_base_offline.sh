#!/usr/bin/env bash
# Build the grader's base image from Debian packages, with no container registry:
# debootstrap (bookworm, minbase + python3) into a rootfs, then `docker import` it.
#
#   bash sandbox/image/build_base_offline.sh            # -> rh-base:bookworm-<YYYYMMDD> (+ rh-base:bookworm)
#   DEBIAN_MIRROR=http://snapshot.debian.org/archive/debian/20250520T000000Z bash ...   # a frozen snapshot
#
# Bookworm's python3 is 3.11, the same minor version as the python:3.11-slim base the
# Dockerfile pins by digest for machines that can pull. The package list (name=version)
# is written into the image at /etc/rh-base.packages and its sha256 into a label, so two
# bases built on different days can be compared.
set -euo pipefail

SUITE="${SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TAG_DATE="${TAG_DATE:-$(date -u +%Y%m%d)}"
REPO="${BASE_REPO:-rh-base}"
TAG="${REPO}:${SUITE}-${TAG_DATE}"
WORK="${WORK_DIR:-$(mktemp -d /tmp/rh-base.XXXXXX)}"
ROOTFS="$WORK/rootfs"

log() { echo "[base-image-offline] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "debootstrap needs root (run as root, or: sudo make base-image-offline)"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install -y debootstrap"
command -v docker >/dev/null || die "docker CLI missing: apt-get install -y docker.io"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (start dockerd first; see .ci/run)"

cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

t0=$(date +%s)
log "debootstrap --variant=minbase --include=python3 $SUITE from $DEBIAN_MIRROR into $ROOTFS"
debootstrap --variant=minbase --include=python3,ca-certificates --components=main \
    "$SUITE" "$ROOTFS" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# Record what is inside before slimming: name=version per line, sorted.
chroot "$ROOTFS" dpkg-query -W -f='${Package}=${Version}\n' | LC_ALL=C sort >"$ROOTFS/etc/rh-base.packages"
pkg_sha=$(sha256sum "$ROOTFS/etc/rh-base.packages" | cut -d' ' -f1)
py_version=$(chroot "$ROOTFS" python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')

# Slim: nothing here is needed at run time (apt lists, caches, docs, man pages, logs).
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/tmp/* 2>/dev/null || true

log "docker import -> $TAG (python $py_version, packages sha256 $pkg_sha)"
tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL org.opencontainers.image.title=rh-base org.opencontainers.image.base.name=debian:${SUITE}-debootstrap-minbase rh.base.suite=${SUITE} rh.base.mirror=${DEBIAN_MIRROR} rh.base.python=${py_version} rh.base.packages_sha256=${pkg_sha}" \
    - "$TAG" >/dev/null
# A moving tag that build_image.sh falls back to; the dated tag and the image ID are what it logs.
docker tag "$TAG" "${REPO}:${SUITE}"
id=$(docker image inspect -f '{{.Id}}' "$TAG")
size=$(docker image inspect -f '{{.Size}}' "$TAG")
log "built $TAG ($id), $((size / 1024 / 1024)) MiB, in $(( $(date +%s) - t0 )) s"
echo "$TAG"
