"""Shared fixtures. Append-only across areas: add a fixture with a short docstring; don't rename others'."""
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# pytest-xdist runs one worker per core; a second OpenMP thread per worker only fights the other worker.
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def problems():
    """The 119 pinned test-split problems (sandbox.data.load_problems("test")), loophole modes assigned."""
    from sandbox.data import load_problems

    return load_problems("test")
