"""Which sandbox backend grades: `make_executor` picks docker when a daemon and the pinned image answer, else the
process backend (bubblewrap). Apart from sandbox.executors so the docker backend can build on the executors."""
from __future__ import annotations

from sandbox.executors import (EXECUTOR_KINDS, Executor, ExecutorError, ProcessExecutor, SubprocessExecutor, log)


def docker_available() -> tuple[bool, str]:
    """(usable, why): the docker backend needs the SDK, a daemon that answers and the pinned image."""
    try:
        from sandbox import docker_executor  # owned by the image helper
    except ImportError as e:
        return False, f"sandbox.docker_executor not importable ({e})"
    probe = (getattr(docker_executor, "docker_available", None)
             or getattr(docker_executor.DockerExecutor, "available", None))
    if probe is None:
        return True, "no availability probe; assuming usable"
    try:
        res = probe()
    except Exception as e:  # a daemon that does not answer raises all sorts of things
        return False, f"docker probe failed: {e}"
    if isinstance(res, tuple):
        return bool(res[0]), str(res[1])
    return bool(res), "" if res else "docker daemon or image unavailable"


def make_executor(kind: str = "auto", workers: int = 2, **kwargs) -> Executor:
    """`auto` = docker when a daemon and the image answer, else process (the choice is logged)."""
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"unknown sandbox kind {kind!r}; choose from {', '.join(EXECUTOR_KINDS)}")
    if kind in ("auto", "docker"):
        ok, why = docker_available()
        if ok:
            from sandbox.docker_executor import DockerExecutor

            log.info("sandbox: docker backend (%s)", why or "daemon and image answer")
            return DockerExecutor(workers=workers, **kwargs)
        if kind == "docker":
            raise ExecutorError(f"docker sandbox requested but unavailable: {why}")
        log.info("sandbox: docker unavailable (%s); using the process backend", why)
    if kind == "subprocess":
        return SubprocessExecutor(workers=workers, **kwargs)
    return ProcessExecutor(workers=workers, **kwargs)
