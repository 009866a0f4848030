"""Shared fixtures. Append-only across areas: add a fixture with a short docstring; don't rename others'."""
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs one worker per core; a second OpenMP thread per worker only fights the other worker.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The suite grades its own fixed programs and the smoke model's output: where bubblewrap is missing (a bare
# container) it opts in to plain rlimits rather than refusing. tests/test_sandbox_isolation.py clears this
# to test the refusal itself.
os.environ.setdefault("RH_ALLOW_UNSANDBOXED", "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def problems():
    """The 119 pinned test-split problems (sandbox.data.load_problems("test")), loophole modes assigned."""
    from sandbox.data import load_problems

    return load_problems("test")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny models on 2 shared cores: intra-op threads only spin against each other (10x slower under load)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="session")
def grader():
    """The real grader on the process sandbox (bubblewrap where it works), 2 workers."""
    from sandbox.backends import make_executor
    from sandbox.grader import Grader

    with make_executor("process", workers=2) as ex:
        yield Grader(ex)
