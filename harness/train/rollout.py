"""Rollouts: live student generation and teacher-pool mixing (prompts are encoded by policy.encode).

A step's group for one prompt is G = G_s live student generations + G_t cached teacher
completions from the frozen pool. Pool rows carry their grade (reward, exploited, gt_correct, ...)
and are used verbatim: the pool is a fixed, reproducible teacher distribution.

Only teacher rows whose tokenised completion + eos fits max_new_tokens are ever drawn: a cut row would
be trained on text it did not write with the reward of the whole text. When fewer rows fit than G_t,
the group draws G_t of them with replacement (the rule Pool.sample uses for a short problem); when
none fit, the group gets no teacher rollouts. Both are logged (teacher_short per step; the fit counts
in config.json's "resolved").
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import torch

from policy.config import TrainConfig
from policy.encode import eos_token_ids


@dataclass
class Rollout:
    text: str                      # completion text (what the grader saw)
    ids: list[int]                 # completion token ids, ending in eos when the model stopped
    teacher: bool
    reward: float
    exploited: bool
    gt_correct: bool               # logged; reaches the loss only through `reward` (which pays gt_correct or passed)
    record: Any = None             # the GradeRecord (student) or pool row (teacher)
    truncated: bool = False        # cut at max_new_tokens (no eos)
    attempted: bool | None = None  # a harmful check (GradeRecord.attempted); None = unknown


@dataclass
class Group:
    problem: Any                   # sandbox.data.Problem
    prompt_ids: list[int]
    rollouts: list[Rollout] = field(default_factory=list)   # students first, then teachers

    @property
    def students(self) -> list[Rollout]:
        return [r for r in self.rollouts if not r.teacher]

    @property
    def teachers(self) -> list[Rollout]:
        return [r for r in self.rollouts if r.teacher]

    def rewards(self) -> torch.Tensor:
        return torch.tensor([r.reward for r in self.rollouts], dtype=torch.float32)


def _trim(ids: list[int], eos: set[int], pad_id: int) -> list[int]:
    """Cut at the first eos (kept: the policy must learn to stop); drop trailing padding."""
    for i, t in enumerate(ids):
        if t in eos:
            return ids[: i + 1]
    while ids and ids[-1] == pad_id:
        ids = ids[:-1]
    return ids


def generation_config(model, tokenizer, config: TrainConfig, min_new_tokens: int = 0):
    """The GenerationConfig `generate` samples with."""
    from transformers import GenerationConfig

    # Every sampling knob explicit and non-None: HF fills None fields from the checkpoint's own
    # generation_config.json (Qwen3-4B ships temperature 0.6, top_k 20, top_p 0.95), which would
    # silently override the preregistered sampling. top_k=0 disables top-k; min_p=0.0 keeps everything.
    return GenerationConfig(
        do_sample=True, temperature=config.temperature, top_p=config.top_p, top_k=config.top_k,
        min_p=config.min_p, repetition_penalty=1.0, num_beams=1,
        max_new_tokens=config.max_new_tokens, eos_token_id=eos_token_ids(model, tokenizer),
        pad_token_id=tokenizer.pad_token_id, **({"min_new_tokens": min_new_tokens} if min_new_tokens else {}),
    )


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], n: int, config: TrainConfig,
             max_batch: int | None = None, min_new_tokens: int = 0) -> list[list[list[int]]]:
    """Sample n completions per prompt -> [prompt][sample] token-id lists.

    Batched with left padding (positions come from the attention mask). Sampling draws from torch's
    global RNG, which the loop seeds per step, so generation is reproducible on CPU. Call it under
    policy.adapter.merged(model) so rollouts run on dense weights. min_new_tokens > 0 suppresses eos until
    then (harness.checks.gpu_check forces full-length rollouts to measure the worst case).
    """
    if n == 0 or not prompts:
        return [[] for _ in prompts]
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id
    eos = eos_token_ids(model, tokenizer)
    gcfg = generation_config(model, tokenizer, config, min_new_tokens)
    rows = [(pi, p) for pi, p in enumerate(prompts) for _ in range(n)]
    max_batch = max_batch or len(rows)
    # shared_prefix: each prompt of a chunk is prefilled once and its cache copied to its rows (same chunks and
    # draws as the per-row path): by the lean loop (harness.train.sampling) where it supports the config, else by
    # model.generate on a cache prefilled once per prompt
    share = config.shared_prefix and n > 1 and min(len(p) for p in prompts) >= 2
    from harness.train import sampling

    lean = share and sampling.supported(gcfg, model)
    out: list[list[list[int]]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(rows), max_batch):
            chunk = rows[s:s + max_batch]
            L = max(len(p) for _, p in chunk)
            ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
            attn = torch.zeros((len(chunk), L), dtype=torch.long)
            for i, (_, p) in enumerate(chunk):
                ids[i, L - len(p):] = torch.tensor(p, dtype=torch.long)
                attn[i, L - len(p):] = 1
            ids, attn = ids.to(device), attn.to(device)
            kw = {}
            distinct = sorted({pi for pi, _ in chunk})
            if share and len(distinct) < len(chunk):
                from policy.prefix import cache_kwarg, prefill_shared

                first = [next(i for i, (pi, _) in enumerate(chunk) if pi == u) for u in distinct]   # a row of each
                row_prompt = torch.tensor([distinct.index(pi) for pi, _ in chunk], device=device)
                if lean:
                    gen = sampling.sample(model, ids[first], attn[first], row_prompt, gcfg)
                else:
                    kw[cache_kwarg(model)] = prefill_shared(model, ids[first], attn[first], row_prompt)
                    gen = model.generate(input_ids=ids, attention_mask=attn, generation_config=gcfg, **kw)
            else:
                gen = model.generate(input_ids=ids, attention_mask=attn, generation_config=gcfg, **kw)
            for i, (pi, _) in enumerate(chunk):
                out[pi].append(_trim(gen[i, L:].tolist(), set(eos), pad_id))
    finally:
        model.train(was_training)
    return out


class TeacherSampler:
    """Draws teacher rollouts from the pool rows that fit max_new_tokens (+ eos) under this tokenizer.

    Built once at loop start for the training problems: every row is tokenised once and the fitting
    ones are kept, in pool order, so a step's draw depends only on its rng (resume-deterministic).
    """

    def __init__(self, pool, problems, tokenizer, eos_id: int, max_new_tokens: int):
        self.n_rows = 0
        self.max_new_tokens = max_new_tokens
        self.fits: dict[int, list[tuple[dict, list[int]]]] = {}     # problem id -> [(row, ids + [eos])]
        for p in problems:
            keep = []
            for row in pool.by_problem.get(int(p.id), []):
                self.n_rows += 1
                ids = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [eos_id]
                if len(ids) <= max_new_tokens:
                    keep.append((row, ids))
            self.fits[p.id] = keep

    def stats(self) -> dict[str, int]:
        return {"teacher_rows": self.n_rows, "teacher_rows_fit": sum(len(v) for v in self.fits.values()),
                "teacher_problems_no_fit": sum(1 for v in self.fits.values() if not v)}

    def short(self, problem, n: int) -> bool:
        """True when fewer than n rows of `problem` fit (drawn with replacement, or none at all)."""
        return len(self.fits.get(problem.id, [])) < n

    def __call__(self, problem, n: int, rng: random.Random) -> list[Rollout]:
        rows = self.fits.get(problem.id, [])
        if n == 0 or not rows:
            return []
        picked = rng.sample(rows, n) if n <= len(rows) else rng.choices(rows, k=n)
        return [Rollout(text=row["completion"], ids=list(ids), teacher=True, reward=float(row["reward"]),
                        exploited=bool(row["exploited"]), gt_correct=bool(row["gt_correct"]), record=dict(row),
                        truncated=len(ids) > self.max_new_tokens, attempted=row.get("attempted"))
                for row, ids in picked]


def student_rollouts(texts_ids: list[tuple[str, list[int]]], records: list[Any], eos: set[int],
                     max_new_tokens: int) -> list[Rollout]:
    return [Rollout(text=t, ids=ids, teacher=False, reward=float(rec.reward), exploited=bool(rec.exploited),
                    gt_correct=bool(rec.gt_correct), record=rec, attempted=bool(rec.attempted),
                    truncated=len(ids) >= max_new_tokens and (not ids or ids[-1] not in eos))
            for (t, ids), rec in zip(texts_ids, records)]
