# The pinned grader image: the fork server sandbox/worker.py, the LeetCode data and (when built)
# the frozen teacher pool, with no network at build time and none at run time.
#
# Build it with `make image` (sandbox/image/build_image.sh): it downloads the hash-locked wheelhouse on the
# host, stages the build context (build/image/: sandbox/, data/, pool/, wheelhouse/), picks the base
# (the digest below when it can be pulled, else the debootstrap base of `make base-image-offline`, by image
# ID) and passes the hashes the labels carry. Classic builder (Debian's docker.io 20.10): no BuildKit syntax.

# Nominal pinned base (Debian bookworm, CPython 3.11). Overridden by build_image.sh with the offline
# base's image ID (sha256:...) when no registry answers.
ARG BASE_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7
FROM ${BASE_IMAGE}

ARG BASE_IMAGE
ARG BASE_NAME=python:3.11-slim
# "file=sha256,file=sha256" of data/*.jsonl and pool/*.jsonl, the sandbox/ tree hash and the worker.py hash
# (sandbox.docker_executor.code_hash / worker_hash); the RUN below re-checks all but the tree hash.
# DATA_GIT_BLOB: "file=<git blob id>,..." of data/*.jsonl, the ids sandbox.data.DATA_FILES pins.
ARG DATA_SHA256=
ARG DATA_GIT_BLOB=
ARG POOL_SHA256=
ARG SANDBOX_SHA256=unknown
ARG WORKER_SHA256=unknown
ARG GRADER_UID=10001

ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/opt/rh \
    RH_DATA_DIR=/opt/rh/data \
    RH_POOL_DIR=/opt/rh/pool

# 1. Python dependencies, offline. pip runs straight from its own wheel, so a base without pip
#    (debootstrap minbase) and one with pip (slim) install the same locked set the same way.
COPY wheelhouse/ /tmp/wheelhouse/
COPY requirements-image.txt /tmp/requirements-image.txt
RUN set -eu; \
    pipwhl="$(ls /tmp/wheelhouse/pip-*.whl)"; \
    python3 "$pipwhl/pip" install --no-index --find-links /tmp/wheelhouse --require-hashes --no-deps \
        --no-cache-dir --disable-pip-version-check --break-system-packages --root-user-action=ignore \
        -r /tmp/requirements-image.txt; \
    rm -rf /tmp/wheelhouse /tmp/requirements-image.txt; \
    python3 -m pip --version

# 2. A fixed non-root user, written directly (minbase and slim differ in which admin tools they carry).
RUN set -eu; \
    echo "grader:x:${GRADER_UID}:${GRADER_UID}:grader:/work:/usr/sbin/nologin" >> /etc/passwd; \
    echo "grader:x:${GRADER_UID}:" >> /etc/group; \
    mkdir -p /work && chown "${GRADER_UID}:${GRADER_UID}" /work

# 3. The grader code, the data and the pool: root-owned, read-only to the grader.
COPY sandbox/ /opt/rh/sandbox/
COPY data/ /opt/rh/data/
COPY pool/ /opt/rh/pool/
RUN set -eu; \
    cd /opt/rh; \
    check() { dir="$1"; list="$2"; [ -z "$list" ] && return 0; \
      echo "$list" | tr ',' '\n' | while IFS='=' read -r f h; do echo "$h  $dir/$f"; done | sha256sum -c --quiet -; }; \
    check data "${DATA_SHA256}"; check pool "${POOL_SHA256}"; \
    [ "${WORKER_SHA256}" = unknown ] || echo "${WORKER_SHA256}  sandbox/worker.py" | sha256sum -c --quiet -; \
    python3 -m compileall -q sandbox; \
    echo '{"id": "smoke", "code": "print(6 * 7)"}' | PYTHONHASHSEED=0 python3 -S sandbox/worker.py --jobs 1 \
        | grep -q '"stdout":"42\\n"' || { echo "fork server smoke test failed" >&2; exit 1; }; \
    chown -R root:root /opt/rh; chmod -R a+rX,go-w /opt/rh

LABEL org.opencontainers.image.title="rh-grader" \
      org.opencontainers.image.description="LeetCode reward-hacking grader sandbox (fork server, data, teacher pool)" \
      org.opencontainers.image.base.name="${BASE_NAME}" \
      rh.base.image="${BASE_IMAGE}" \
      rh.data.sha256="${DATA_SHA256}" \
      rh.data.git_blob="${DATA_GIT_BLOB}" \
      rh.pool.sha256="${POOL_SHA256}" \
      rh.sandbox.sha256="${SANDBOX_SHA256}" \
      rh.worker.sha256="${WORKER_SHA256}"

USER ${GRADER_UID}:${GRADER_UID}
WORKDIR /work
# `docker run -i --rm --network none <image>` speaks the worker protocol on stdin/stdout; the executor
# instead keeps the container idle and execs the worker into it.
CMD ["python3", "-S", "/opt/rh/sandbox/worker.py", "--jobs", "2", "--base-dir", "/work"]
