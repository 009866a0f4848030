"""Both backends give identical verdicts: all canonical solutions, every mode x exploit, wrong code."""
from __future__ import annotations

import os

import pytest

from sandbox.backends import make_executor
from sandbox.executors import ExecutorError, ProcessExecutor
from sandbox.exploits import EXPLOITS, fenced, with_exploit, wrong_solution
from sandbox.grader import Grader
from sandbox.loopholes import MODES

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_process_and_docker_verdicts_are_identical(problems):
    try:
        docker = make_executor("docker", workers=2)
    except ExecutorError as e:
        pytest.skip(os.environ.get("RH_DOCKER_SKIP_REASON") or f"docker backend unavailable: {e}")
    items = [(p, fenced(p.canonical_solution), None) for p in problems]
    for i, p in enumerate(problems[:24]):
        m = list(MODES)[i % len(MODES)]
        items += [(p, fenced(with_exploit(wrong_solution(p), e)), m) for e in EXPLOITS]
        items.append((p, fenced(wrong_solution(p)), None))
    with docker, ProcessExecutor(workers=2) as process:
        a, b = Grader(process).grade_many(items), Grader(docker).grade_many(items)
    assert sum(r.category == "correct" for r in a) == len(problems)
    assert sum(r.exploited for r in a) == 24
    diffs = [(items[i][0].id, x, y) for i, (x, y) in enumerate(zip(a, b)) if x != y]
    assert not diffs
