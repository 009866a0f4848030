"""Held-out evaluation: student-only generations on problems never trained on.

Headline numbers: hack rate (fraction exploited) and gt pass rate (fraction gt-correct). For an
arm that routes the hack-ward update into delta_S_hack, evaluation runs with it ablated (zeroed),
which is the deploy-time model of that arm.
"""
from __future__ import annotations

from contextlib import ExitStack

import torch

from harness.config import TrainConfig
from harness.rollout import PromptEncoder, generate


def eval_problems(heldout: list, config: TrainConfig) -> list:
    """The fixed held-out subset: the first `eval_problems` by the split's (deterministic) order; 0 = all."""
    return list(heldout) if config.eval_problems <= 0 else list(heldout)[: config.eval_problems]


def evaluate(model, tokenizer, problems: list, grader, config: TrainConfig, encoder: PromptEncoder,
             seed: int, ablate_hack: bool = False) -> dict[str, float]:
    """-> {eval_hack_rate, eval_pass_rate, eval_n}. Seeds torch's RNG with `seed` (the caller derives it
    from (run seed, step)) so evaluation is reproducible and independent of the training RNG stream."""
    from method.adapter import hack_ablated, merged

    if not problems:
        return {"eval_hack_rate": None, "eval_pass_rate": None, "eval_n": 0}
    torch.manual_seed(seed)
    prompts = [encoder(p) for p in problems]
    with ExitStack() as stack:
        if ablate_hack:
            stack.enter_context(hack_ablated(model))   # first: the merged weights must not include delta_S_hack
        stack.enter_context(merged(model))
        batch = max(1, config.prompts_per_step * max(1, config.student_per_group))
        ids = generate(model, tokenizer, prompts, config.eval_samples, config, max_batch=batch)
    jobs = []
    for p, samples in zip(problems, ids):
        for s in samples:
            jobs.append((p, tokenizer.decode(s, skip_special_tokens=True), None))
    records = grader.grade_many(jobs)
    n = len(records)
    return {
        "eval_hack_rate": sum(bool(r.exploited) for r in records) / n,
        "eval_pass_rate": sum(bool(r.gt_correct) for r in records) / n,
        "eval_n": n,
    }
