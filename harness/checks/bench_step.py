"""`make bench-step`: one training step's phases with the per-row and the shared-prefix forward, side by side.

For each model, one process times interleaved rounds of
    generation      the loop's `generate` on merged weights (P prompts x G_s rows; shared: one prefill per prompt and
                    the lean decode loop of harness.train.sampling)
    ref fwd         the KL reference forward of every group's student half (adapter off, no grad)
    loss fwd+bwd    `policy_gradient` as the loop calls it (reference forward included: the loop's t_fwd_bwd)
with TrainConfig.shared_prefix False and True (shared: the packed suffixes of policy.prefix under sdpa),
and prints per phase the median s/step of each path, the ratio per-row / shared of the medians, and the lowest and
highest of the per-round ratios (each round runs both paths back to back, so a round's ratio sees one load).
"whole step" = generation + loss fwd+bwd; grading (under 0.2 s per mini step, untouched here) and the
optimizer step (microseconds at these sizes) are left out.

The workload has mini's shape (random token ids): P = 4 prompts of 175-231 tokens, G = 4 student + 4 teacher rows,
students 15-55 tokens and teachers 11-54, rewards with spread so every group trains.
Models: mini (the built base when it is cached, else mini's architecture at random init; said so) and the
shrunk Qwen3-4B architecture (`full`'s code path: gradient checkpointing on; fp32 on CPU). Timings are medians
on whatever machine runs this; on shared cores they are noisy. The targets (loss fwd+bwd >= 3x, whole mini
step >= 2.5x on 2 cores) are printed beside the measured ratios, never asserted.
"""
from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from harness.presets import resolve_config
from policy.config import TrainConfig

TARGET_LOSS = 3.0
TARGET_STEP = 2.5
# mini's shapes, measured: prompts 175-231 tokens (median 192) in mini's tokenizer; teacher pool rows 11-54
# (median 34); a student completion is about 35 tokens (issue 19's run).
PROMPT_LENS = (175, 231)
STUDENT_LENS = (15, 55)
TEACHER_LENS = (11, 54)


def _mini_model(tmp: Path):
    """-> (model dir, description): the cached mini base, else mini's architecture at random init."""
    from policy.substrate import BUILTINS, MINI_DIMS, MINI_VOCAB, _build_dir, _save_model, qwen3_config

    key_fn, _ = BUILTINS["mini"]
    try:
        final, _ = _build_dir("mini", key_fn(), None)
        if (final / "builtin.json").exists():
            return final, f"builtin:mini ({final.name})"
    except Exception:       # no data to key the base on: fall through to the random one
        pass
    from transformers import Qwen3ForCausalLM

    from policy.qwen3_local import qwen3_tokenizer

    tok = qwen3_tokenizer(vocab_size=MINI_VOCAB)
    torch.manual_seed(0)
    out = tmp / "mini_dims"
    _save_model(Qwen3ForCausalLM(qwen3_config(tok, **MINI_DIMS)), tok, out)
    return out, "mini's architecture at random init (the mini base is not built here; speed does not need it)"


def _setup(which: str, tmp: Path):
    from policy.adapter import wrap_model
    from policy.model_loading import load_policy

    if which == "mini":
        path, desc = _mini_model(tmp)
        cfg = resolve_config("mini", "vanilla", 41, {"model": str(path), "dtype": "float32"})
    else:
        from policy.qwen3_local import save_local_qwen3

        path = save_local_qwen3(tmp / "qwen3_shrunk", shrink=True)
        desc = "Qwen3-4B architecture shrunk (policy.qwen3_local), gradient checkpointing on, fp32"
        cfg = resolve_config("full", "vanilla", 41, dict(model=str(path), dtype="float32", attn_impl="sdpa",
                                                          prompts_per_step=4, group_size=8, max_new_tokens=96))
    model, tok = load_policy(cfg, device=torch.device("cpu"), verbose=False)
    wrap_model(model, cfg.target_modules, cache_dir=tmp / "svd", residual=cfg.adapter_form == "residual")
    return model, tok, cfg, desc


def _workload(cfg: TrainConfig, vocab: int, eos: int, seed: int = 0):
    from harness.train.rollout import Group, Rollout

    rng = random.Random(seed)
    groups, prompts = [], []
    for gi in range(cfg.prompts_per_step):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randint(*PROMPT_LENS))]
        prompts.append(prompt)
        g = Group(SimpleNamespace(id=gi), prompt)
        for j in range(cfg.group_size):
            teacher = j >= cfg.student_per_group
            n = rng.randint(*(TEACHER_LENS if teacher else STUDENT_LENS))
            g.rollouts.append(Rollout(text="", ids=[rng.randrange(3, vocab) for _ in range(n - 1)] + [eos],
                                      teacher=teacher, reward=float(j % 3), exploited=False, gt_correct=False))
        groups.append(g)
    return groups, prompts


def _time(fn) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on cores shared with other jobs the wall time waits for the
    scheduler, the CPU time much less (at 1 thread it is the work done, give or take cache contention)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def bench(which: str, rounds: int, tmp: Path) -> dict:
    from harness.train.loop import policy_gradient
    from harness.train.rollout import generate
    from method.hooks import Arm
    from policy.adapter import adapter_disabled, merged
    from policy.forward import completion_logprobs, make_batch
    from policy.grpo import loss_normaliser

    model, tok, cfg, desc = _setup(which, tmp)
    groups, prompts = _workload(cfg, len(tok), tok.eos_token_id)
    norm = loss_normaliser(cfg.prompts_per_step, cfg.group_size, cfg.max_new_tokens)
    # generation: the student rows' mean length, so a random model does not run every row to max_new_tokens
    gen_cfg = resolve_config(cfg.preset, "vanilla", 41, {"model": cfg.model, "max_new_tokens": sum(STUDENT_LENS) // 2})
    arm = Arm()

    def gen(shared):
        torch.manual_seed(0)
        with merged(model):
            generate(model, tok, prompts, cfg.student_per_group, dataclasses.replace(gen_cfg, shared_prefix=shared),
                     min_new_tokens=gen_cfg.max_new_tokens)

    def ref(shared):
        c = resolve_config(cfg.preset, "vanilla", 41, {"model": cfg.model, "shared_prefix": shared})
        model.eval()
        with torch.no_grad(), adapter_disabled(model):
            for g in groups:
                completion_logprobs(model, make_batch(g.prompt_ids, [r.ids for r in g.students], tok.pad_token_id,
                                                      "cpu"), shared_prefix=c.shared_prefix)

    def loss(shared):
        c = resolve_config(cfg.preset, "vanilla", 41, {k: getattr(cfg, k) for k in ("model", "dtype", "attn_impl",
                           "grad_checkpointing", "prompts_per_step", "group_size", "max_new_tokens")}
                           | {"shared_prefix": shared})
        sg = policy_gradient(model, groups, arm, c, tok.pad_token_id, norm, step=1)
        assert sg.live == len(groups)
        model.zero_grad(set_to_none=True)

    phases = {"generation": {}, "ref fwd": {}, "loss fwd+bwd": {}}
    for shared in (False, True):        # warm-up (allocator, kernels), untimed
        gen(shared), loss(shared)
    for _ in range(rounds):
        for shared in (False, True):    # interleaved, so both paths see the same load
            phases["generation"].setdefault(shared, []).append(_time(lambda: gen(shared)))
            phases["ref fwd"].setdefault(shared, []).append(_time(lambda: ref(shared)))
            phases["loss fwd+bwd"].setdefault(shared, []).append(_time(lambda: loss(shared)))
    whole = "whole step (gen + loss)"
    phases[whole] = {s: [(g[0] + l[0], g[1] + l[1]) for g, l in zip(phases["generation"][s], phases["loss fwd+bwd"][s])]
                     for s in (False, True)}
    med = {clock: {ph: {s: statistics.median(x[i] for x in v) for s, v in d.items()} for ph, d in phases.items()}
           for i, clock in enumerate(("wall", "cpu"))}
    span = {clock: {ph: (min(r), max(r)) for ph, d in phases.items()
                    for r in [[a[i] / b[i] for a, b in zip(d[False], d[True])]]}
            for i, clock in enumerate(("wall", "cpu"))}
    return {"model": desc, "med": med, "span": span, "rounds": rounds, "cfg": cfg}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mini,qwen3-shrunk", help="comma list of: mini, qwen3-shrunk")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the presets' cpu_threads: 1)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        torch.set_num_threads(args.threads)
    import os

    print(f"bench-step: torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} cpu(s) "
          f"visible, load average {os.getloadavg()[0]:.2f} (shared cores: timings are noisy)")
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.models.split(","):
            r = bench(which.strip(), args.rounds, Path(tmp))
            c = r["cfg"]
            print(f"\n[{which}] {r['model']}\n  P={c.prompts_per_step} prompts of {PROMPT_LENS[0]}-{PROMPT_LENS[1]} "
                  f"tokens, G_s={c.student_per_group} + G_t={c.teacher_per_group}; {r['rounds']} rounds")
            for clock, title in (("wall", "wall s/step"), ("cpu", "cpu s/step (this process)")):
                v, span = r["med"][clock], r["span"][clock]
                print(f"  {title}")
                print(f"  {'phase':<26}{'per-row':>10}{'shared':>10}{'ratio':>8}{'round ratios':>18}   target")
                for ph in v:
                    target = {"loss fwd+bwd": f">= {TARGET_LOSS}x", "whole step (gen + loss)": f">= {TARGET_STEP}x"
                              }.get(ph, "") if which == "mini" else ""          # the targets are mini's
                    lo, hi = span[ph]
                    print(f"  {ph:<26}{v[ph][False]:>10.3f}{v[ph][True]:>10.3f}{v[ph][False] / v[ph][True]:>7.2f}x"
                          f"{lo:>10.2f}-{hi:.2f}x   {target}")


if __name__ == "__main__":
    main()
