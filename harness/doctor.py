"""`harness doctor`: is this machine ready, and if not, what to fix.

Each check returns ok / warn / fail with a one-line detail and a fix. Only a fail
(nothing can run: no disk, no memory, no torch) makes the command exit non-zero;
a missing GPU or Docker daemon is a warn, since smoke / mini run on CPU with the
process sandbox.
"""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from sandbox.paths import ARTIFACTS_DIR, DATA_DIR, SHARED_DATA_DIR

OK, WARN, FAIL = "ok", "warn", "fail"
GiB = 2**30
MIN_FREE_DISK_GIB = 1.0        # below: fail
FULL_FREE_DISK_GIB = 40.0      # Qwen3-4B weights + fp32 SVD cache + checkpoints: warn below
MIN_FREE_MEM_GIB = 1.0
MINI_FREE_MEM_GIB = 4.0


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def check_python() -> Check:
    try:
        from policy.determinism import environment
        env = environment()
    except Exception as e:  # noqa: BLE001
        return Check("python deps", FAIL, f"{type(e).__name__}: {e}", "make setup")
    return Check("python deps", OK, f"python {env['python']}, torch {env['torch']}, transformers "
                                    f"{env['transformers']}, tokenizers {env['tokenizers']}; torch CPU kernels: "
                                    f"{env['cpu_capability']}; host CPU: {env['host_cpu']['model']} "
                                    f"({', '.join(env['host_cpu']['isa'] or ['flags unknown'])})")


def check_isolation() -> Check:
    """What will isolate graded programs under --sandbox auto: docker, else bubblewrap, else nothing (refused)."""
    from sandbox.backends import docker_available
    from sandbox.executors import ALLOW_UNSANDBOXED_ENV, ProcessExecutor, unsandboxed_allowed
    ok, why = docker_available()
    if ok:
        return Check("grader isolation", OK, "docker (the pinned grader image)")
    ex = ProcessExecutor(workers=1, allow_unsandboxed=True)   # probe only: start the worker, run nothing
    try:
        ex.start()
        reason = ex.fallback_reason
    except Exception as e:  # noqa: BLE001
        return Check("grader isolation", FAIL, f"the process sandbox does not start: {type(e).__name__}: {e}",
                     "harness --debug grade ... for the traceback")
    finally:
        ex.close()
    if ex.isolated:
        return Check("grader isolation", OK, f"bubblewrap (process backend; docker: {why})")
    fix = ("install bubblewrap (apt-get install bubblewrap) or start Docker and `make image`; or opt in with "
           f"--allow-unsandboxed / {ALLOW_UNSANDBOXED_ENV}=1")
    if unsandboxed_allowed():
        return Check("grader isolation", WARN, f"NONE: plain rlimits, allowed by {ALLOW_UNSANDBOXED_ENV} ({reason}; "
                                               f"docker: {why})", fix)
    return Check("grader isolation", FAIL, f"none available, so grading will refuse ({reason}; docker: {why})", fix)


def check_docker() -> Check:
    try:
        import docker
        client = docker.from_env(timeout=5)
        client.ping()
        version = client.version().get("Version", "?")
    except Exception as e:  # noqa: BLE001 - any failure means "no daemon" to us
        return Check("docker daemon", WARN, f"not reachable ({type(e).__name__})",
                     "start dockerd (or run as a user in the docker group); until then grading uses the "
                     "process sandbox (--sandbox process)")
    return Check("docker daemon", OK, f"Docker {version}")


def check_image() -> Check:
    """The pinned grader image and its data-hash labels, via sandbox.docker_executor.image_status()."""
    try:
        from sandbox.docker_executor import image_status
    except ImportError as e:
        return Check("grader image", WARN, f"cannot import sandbox.docker_executor ({e})", "make setup")
    st = image_status()
    if not st.get("daemon"):
        return Check("grader image", WARN, "not checked: no Docker daemon", "see 'docker daemon'")
    if not st.get("present"):
        return Check("grader image", WARN, f"{st.get('image')} absent", "make image")
    data = st.get("data") or {}
    labels = ", ".join(f"{name} {str(d.get('image'))[:12]}"
                       + ("" if d.get("match") else f" (pinned {str(d.get('pinned'))[:12]})")
                       for name, d in sorted(data.items())) or "no data labels"
    detail = f"{st.get('image')} ({st.get('size_mb')} MB); data {labels}"
    if st.get("ok"):
        return Check("grader image", OK, detail + "; sandbox code matches")
    return Check("grader image", WARN, f"{detail}; {st.get('reason')}", "make image")


def check_data() -> Check:
    found = sorted(p.name for d in (Path(DATA_DIR), Path(SHARED_DATA_DIR)) if d.is_dir() for p in d.glob("*.jsonl"))
    if not found:
        return Check("data", WARN, f"no *.jsonl in {DATA_DIR} or {SHARED_DATA_DIR}", "harness data")
    detail = ", ".join(dict.fromkeys(found))
    try:
        from sandbox.data import _source_path, data_hash, local_files
        detail += f"; test split hash {data_hash('test')}"
        for name, src in local_files().items():   # the repository's own problem sets (mini), sha256-pinned
            detail += f"; {name} {_source_path(src)[1][:16]} (in repo)"
    except Exception as e:  # noqa: BLE001
        return Check("data", WARN, f"{detail}; hash check failed: {type(e).__name__}: {e}", "harness data")
    return Check("data", OK, detail)


def check_gpu() -> Check:
    import torch
    if not torch.cuda.is_available():
        return Check("gpu", WARN, "no CUDA device", "preset full needs one GPU (see REPRODUCE.md); smoke and mini "
                                                  "run on CPU")
    names = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        names.append(f"{p.name} ({p.total_memory / GiB:.0f} GiB)")
    return Check("gpu", OK, "; ".join(names))


def check_flash_attn() -> Check:
    import torch
    have = importlib.util.find_spec("flash_attn") is not None
    if have:
        return Check("flash-attn", OK, "installed")
    if torch.cuda.is_available():
        return Check("flash-attn", WARN, "not installed: attention falls back to sdpa (slower, more memory)",
                     "pip install flash-attn --no-build-isolation")
    return Check("flash-attn", OK, "not installed; not needed without a GPU")


def _mem_available_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024 / GiB
    except OSError:
        return None
    return None


def check_memory() -> Check:
    avail = _mem_available_gib()
    if avail is None:
        return Check("memory", WARN, "cannot read /proc/meminfo")
    if avail < MIN_FREE_MEM_GIB:
        return Check("memory", FAIL, f"{avail:.1f} GiB available", "free memory: stop other jobs")
    if avail < MINI_FREE_MEM_GIB:
        return Check("memory", WARN, f"{avail:.1f} GiB available (< {MINI_FREE_MEM_GIB:g} GiB)",
                     "preset mini may swap; stop other jobs")
    return Check("memory", OK, f"{avail:.1f} GiB available")


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(paths: list[Path]) -> Check:
    seen: dict[str, float] = {}
    for p in paths:
        e = _existing(Path(p))
        seen[str(p)] = shutil.disk_usage(e).free / GiB
    worst = min(seen.values())
    detail = ", ".join(f"{p}: {v:.1f} GiB free" for p, v in seen.items())
    if worst < MIN_FREE_DISK_GIB:
        return Check("disk", FAIL, detail, "free disk space (rm -rf runs/ or artifacts/ caches you no longer need)")
    if worst < FULL_FREE_DISK_GIB:
        return Check("disk", WARN, detail, f"preset full wants ~{FULL_FREE_DISK_GIB:g} GiB free (model + SVD cache "
                                           "+ checkpoints); smoke / mini need far less")
    return Check("disk", OK, detail)


def check_ray() -> Check:
    if importlib.util.find_spec("ray") is None:
        return Check("ray (optional)", OK, "not installed; only `harness sweep --executor ray` needs it",
                     "pip install -e '.[ray]'")
    import ray
    return Check("ray (optional)", OK, f"ray {ray.__version__}")


def run_checks(out: Path = Path("runs")) -> list[Check]:
    checks: list[Check] = []
    for fn in (check_python, check_docker, check_image, check_isolation, check_data, check_gpu, check_flash_attn,
               check_memory, lambda: check_disk([out, Path(ARTIFACTS_DIR)]), check_ray):
        try:
            checks.append(fn())
        except Exception as e:  # noqa: BLE001 - the doctor must never crash on a sick machine
            checks.append(Check(getattr(fn, "__name__", "check"), FAIL, f"{type(e).__name__}: {e}"))
    return checks
