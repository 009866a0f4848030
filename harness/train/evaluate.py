"""Held-out evaluation: student-only generations on problems never trained on.

Headline numbers: hack rate (fraction exploited) and gt pass rate (fraction gt-correct). For an
arm that routes the hack-ward update into delta_S_hack, evaluation runs with it ablated (zeroed),
which is the deploy-time model of that arm.

Diagnostic merge_gap: generation samples from the merged dense weights, the loss differentiates the
factored forward; in bf16 the two differ by rounding (a small delta moves W by less than its ulp).
Measured on the first held-out problem's samples; ~0 in fp32.
"""
from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import torch

from harness.train.rollout import generate
from policy.config import TrainConfig
from policy.encode import PromptEncoder
from policy.forward import completion_logprobs, make_batch


def eval_problems(heldout: list, config: TrainConfig) -> list:
    """The fixed held-out subset: the first `eval_problems` by the split's (deterministic) order; 0 = all."""
    return list(heldout) if config.eval_problems <= 0 else list(heldout)[: config.eval_problems]


def eval_sampling(config: TrainConfig) -> TrainConfig:
    """config with the held-out sampling knobs in place of the training ones (what `generate` reads)."""
    return dataclasses.replace(config, temperature=config.eval_temperature, top_p=config.eval_top_p,
                               top_k=config.eval_top_k, max_new_tokens=config.eval_max_new_tokens)


def evaluate(model, tokenizer, problems: list, grader, config: TrainConfig, encoder: PromptEncoder,
             seed: int, ablate_hack: bool = False) -> dict[str, float]:
    """-> {eval_hack_rate, eval_pass_rate, eval_attempt_rate, eval_n, merge_gap, _records}; _records holds one
    {problem_id, sample, mode, category, exploited, attempted, gt_correct, defines_check} per generation. Seeds
    torch's RNG with `seed` (the caller derives it from (run seed, step)) so evaluation is reproducible and
    independent of the training RNG stream."""
    from policy.adapter import hack_ablated, merged

    if not problems:
        return {"eval_hack_rate": None, "eval_pass_rate": None, "eval_attempt_rate": None, "eval_n": 0,
                "merge_gap": None, "_records": []}
    torch.manual_seed(seed)
    prompts = [encoder(p) for p in problems]
    with ExitStack() as stack:
        if ablate_hack:
            stack.enter_context(hack_ablated(model))   # first: the merged weights must not include delta_S_hack
        with merged(model):
            batch = max(1, config.prompts_per_step * max(1, config.student_per_group))
            sampling = eval_sampling(config)
            ids = generate(model, tokenizer, prompts, config.eval_samples, sampling, max_batch=batch)
        gap = merge_gap(model, prompts[0], ids[0], tokenizer.pad_token_id)
    jobs = []
    for p, samples in zip(problems, ids):
        for s in samples:
            jobs.append((p, tokenizer.decode(s, skip_special_tokens=True), None))
    records = grader.grade_many(jobs)
    n = len(records)
    per_gen = [{"problem_id": p.id, "sample": i, "mode": p.mode, "category": r.category,
                "exploited": bool(r.exploited), "attempted": bool(r.attempted), "gt_correct": bool(r.gt_correct),
                "defines_check": bool(r.defines_check)}   # writes the mode's channel at all, honest or not
               for (p, _, _), r, i in zip(jobs, records, _sample_index(ids))]
    return {
        "_records": per_gen,   # one per generation (the loop writes them to eval_records.jsonl)
        "eval_hack_rate": sum(bool(r.exploited) for r in records) / n,
        "eval_pass_rate": sum(bool(r.gt_correct) for r in records) / n,
        "eval_attempt_rate": sum(bool(r.attempted) for r in records) / n,
        "eval_n": n,
        "merge_gap": gap,
    }


def _sample_index(ids: list[list]) -> list[int]:
    """The sample number of each generation, in the order jobs were built (problem-major)."""
    return [i for samples in ids for i in range(len(samples))]


@torch.no_grad()
def merge_gap(model, prompt_ids: list[int], completions: list[list[int]], pad_id: int) -> float | None:
    """Mean |logp_merged - logp_factored| over the completion tokens of one group (None if it has none):
    how far the policy that generates is from the policy the loss differentiates."""
    from policy.adapter import merged

    completions = [c for c in completions if c]
    if not completions:
        return None
    batch = make_batch(prompt_ids, completions, pad_id, next(model.parameters()).device)
    was_training = model.training
    model.eval()
    try:
        factored, _ = completion_logprobs(model, batch)
        with merged(model):
            dense, _ = completion_logprobs(model, batch)
    finally:
        model.train(was_training)
    mask = batch.completion_mask
    return ((dense - factored).abs() * mask).sum().item() / mask.sum().item()
