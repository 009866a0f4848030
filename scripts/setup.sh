#!/usr/bin/env bash
# `make setup`: the project's own environment in .venv, installed from a hash-locked file, never into the
# system Python (Debian 12 / Ubuntu 24.04 refuse that: PEP 668). Idempotent: a second run with the same lock
# only re-checks. Each step prints its wall time.
#   LOCK=auto|cpu|cuda  auto: cuda.lock where nvidia-smi sees a GPU; else cpu.lock, falling back to cuda.lock
#                       when no source of torch's +cpu wheel answers (PyPI alone serves only the CUDA build)
#   TORCH_CPU_INDEX     where pip looks for the +cpu wheel (default: the PyTorch CPU index)
#   SETUP=existing      accept the environment at $VENV as it is (e.g. a GPU machine's own CUDA torch, offline):
#                       no venv is created and no lock installed; the packages the code imports must be there (with
#                       pyproject.toml's floors for transformers and click; torch: whatever build the machine has,
#                       not the lock's pin) and setuptools (for the editable install, done with no network)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
LOCK="${LOCK:-auto}"
TORCH_CPU_INDEX="${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"
AS_ROOT=0; [ "$(id -u)" = 0 ] && AS_ROOT=1
T0=$(date +%s); STEP_T0=$T0
say() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }
step_done() { local now; now=$(date +%s); say "$1 ($(( now - STEP_T0 )) s)"; STEP_T0=$now; }
apt_install() {  # root only; quiet unless it fails
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/tmp/rh-setup-apt.log 2>&1 || {
        apt-get update -q >>/tmp/rh-setup-apt.log 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>/tmp/rh-setup-apt.log 2>&1; } || {
        tail -n 15 /tmp/rh-setup-apt.log >&2; die "apt-get install $* failed (log above)"; }
}

if [ "${SETUP:-lock}" = existing ]; then
    PY="$VENV/bin/python"
    [ -x "$PY" ] || die "SETUP=existing: no interpreter at $PY (point VENV at the environment's root)"
    "$PY" - <<'PYCHECK' || die "SETUP=existing: $PY lacks what the project needs (above)"
import importlib, importlib.metadata as md, sys
need = {"torch": None, "transformers": (5, 0), "safetensors": None, "tokenizers": None, "click": (8, 1),
        "rich": None, "matplotlib": None, "setuptools": (68, 0)}
bad = []
for name, floor in need.items():
    try:
        mod = importlib.import_module(name)
    except Exception as e:
        bad.append(f"{name}: {type(e).__name__}: {e}")
        continue
    v = md.version(name)
    ver = tuple(int(x) for x in v.split("+")[0].split(".")[:2] if x.isdigit())
    if floor and ver < floor:
        bad.append(f"{name} {v} < {'.'.join(map(str, floor))}")
if sys.version_info < (3, 10):
    bad.append(f"python {sys.version.split()[0]} < 3.10")
for b in bad:
    print(f"[setup]   {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
PYCHECK
    "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation --no-index -e . \
        >/tmp/rh-setup-pip.log 2>&1 || { tail -n 20 /tmp/rh-setup-pip.log >&2; die "pip install -e . failed (log above)"; }
    say "SETUP=existing: accepted $VENV as it is ($("$PY" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')); the project is installed into it"
    exit 0
fi

# 1. an interpreter that can make a venv -----------------------------------------------------------------
command -v "$PYTHON" >/dev/null || {
    [ $AS_ROOT = 1 ] && { say "installing python3 (apt)"; apt_install python3 python3-venv; } ||
    die "no $PYTHON on PATH: install Python >= 3.10 with venv support (Debian: sudo apt-get install python3-venv)"; }
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null \
    || die "$PYTHON is $("$PYTHON" -V 2>&1); the project needs Python >= 3.10"
if [ ! -x "$VENV/bin/python" ]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
        [ $AS_ROOT = 1 ] || die "$PYTHON cannot create a venv (no ensurepip): sudo apt-get install python3-venv, then make setup"
        say "installing python3-venv (apt)"; apt_install python3-venv
    fi
    "$PYTHON" -m venv "$VENV" || die "$PYTHON -m venv $VENV failed"
fi
PY="$VENV/bin/python"
step_done "venv $VENV: $("$PY" -V 2>&1)"

# 2. the locked packages ----------------------------------------------------------------------------------
[ "$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')" = 3.11 ] \
    || say "WARNING: the locks are for CPython 3.11; this venv is $("$PY" -V 2>&1), so pip may find no wheel for some pins"
if [ "$LOCK" = auto ]; then
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then LOCK=cuda; else LOCK=cpu; fi
fi
install_lock() {  # $1 = cpu|cuda; the lock lists every transitive dependency, so --no-deps installs exactly it
    local lock="requirements/$1.lock" stamp="$VENV/.installed-$1-$(sha256sum "requirements/$1.lock" | cut -c1-16)"
    [ -f "$stamp" ] && { say "$lock already installed"; return 0; }
    local extra=()
    # Only an index that answers: pip retries a dead one for every package (minutes of waiting).
    if [ "$1" = cpu ] && "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)" \
            "$TORCH_CPU_INDEX/torch/" >/dev/null 2>&1; then extra=(--extra-index-url "$TORCH_CPU_INDEX"); fi
    "$PY" -m pip install -q --disable-pip-version-check --require-hashes --no-deps "${extra[@]}" -r "$lock" \
        || return 1
    rm -f "$VENV"/.installed-*; touch "$stamp"
}
if ! install_lock "$LOCK"; then
    [ "$LOCK" = cpu ] || die "pip install -r requirements/$LOCK.lock failed (above)"
    say "requirements/cpu.lock did not install (above; usually: neither $TORCH_CPU_INDEX nor pip's find-links" \
        "serve torch's +cpu wheel); trying requirements/cuda.lock (torch from PyPI with its CUDA libraries:" \
        "a larger download, the same CPU code)"
    LOCK=cuda; install_lock cuda || die "pip install -r requirements/cuda.lock failed (above)"
fi
step_done "requirements/$LOCK.lock installed"
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . >/tmp/rh-setup-pip.log 2>&1 \
    || { tail -n 20 /tmp/rh-setup-pip.log >&2; die "pip install -e . failed (log above)"; }
step_done "project installed (editable) into $VENV"

# 3. the grader's isolation ---------------------------------------------------------------------------------
if ! command -v bwrap >/dev/null; then
    if [ $AS_ROOT = 1 ] && command -v apt-get >/dev/null; then say "installing bubblewrap (apt)"; apt_install bubblewrap
    else say "WARNING: bubblewrap is missing and this is not root: the process grader will refuse to run" \
             "model-written code until you install it (sudo apt-get install bubblewrap) or use --sandbox docker"; fi
fi
if command -v bwrap >/dev/null; then   # the grader's own start-up, not a generic bwrap call (it also needs a netns)
    probe=$("$PY" -c 'from sandbox.executors import ProcessExecutor
ex = ProcessExecutor(workers=1, allow_unsandboxed=True)
try:
    ex.start(); print("ok" if ex.isolated else ex.fallback_reason)
finally:
    ex.close()' 2>&1 | tail -n 1)
    if [ "$probe" = ok ]; then step_done "the grader's bubblewrap sandbox starts: $(bwrap --version)"
    else say "WARNING: bubblewrap is installed but the grader's sandbox does not start here ($probe);" \
             "grading will refuse: use Docker (make image; --sandbox docker)"; fi
fi
say "done in $(( $(date +%s) - T0 )) s: $("$PY" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
