"""`make bench-method`: what the SVD adapter and the arms cost, as measured ratios (never asserted).

    (a) rollout tokens/s: wrapped model generating on merged dense weights vs the unwrapped model
        (target >= 0.95x); the factored forward and the merge itself are shown for context.
    (b) train step (forward + backward of the Dr.GRPO loss on one batch): SVD adapter vs a PEFT
        LoRA r=32 adapter on the same modules (target <= 1.5x).
    (c) per-step extra cost of erase's projection (and vanilla's measure-only statistics), and of
        Rebound's activation capture + penalty when baselines.rebound exists, as ratios to a plain step.

Model: the `mini` base (policy.substrate builtin) when it is registered, else a random
Qwen3-architecture model of similar size (said so in the output); `--model 4b-block` times one
decoder block at Qwen3-4B's widths (slow on CPU: its SVD alone takes minutes). Timings are medians
of interleaved rounds on whatever machine runs this; on a shared CPU they are noisy.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from harness.presets import resolve_config
from policy.config import TrainConfig

TARGET_GEN = 0.95
TARGET_TRAIN = 1.5

# Used only when the mini base is not available: a few-M-param Qwen3 (same family the mini preset uses).
FALLBACK_DIMS = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=64, vocab_size=4096, max_position_embeddings=2048,
                     tie_word_embeddings=True)


# One decoder block at Qwen3-4B's real shapes (vocab shrunk): how the ratios look at full width.
QWEN3_4B_BLOCK = dict(hidden_size=2560, intermediate_size=9728, num_hidden_layers=1, num_attention_heads=32,
                      num_key_value_heads=8, head_dim=128, vocab_size=4096, max_position_embeddings=4096,
                      tie_word_embeddings=True)


def load_base(which: str):
    """-> (model, tokenizer | None, description)."""
    from transformers import AutoModelForCausalLM, Qwen3Config

    if which in ("auto", "mini"):
        from policy.substrate import BUILTINS
        if "mini" in BUILTINS:
            from policy.model_loading import load_policy
            cfg = resolve_config("mini", "vanilla", 41)
            model, tok = load_policy(cfg, verbose=False)
            return model.eval(), tok, f"builtin:mini ({cfg.model})"
        if which == "mini":
            raise SystemExit("the mini builtin is not registered in policy.substrate yet")
    dims, why = ((QWEN3_4B_BLOCK, "random 1-block Qwen3 at Qwen3-4B widths") if which == "4b-block" else
                 (FALLBACK_DIMS, "random Qwen3 (mini base not available)"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(Qwen3Config(**dims), attn_implementation="sdpa")
    return model.eval(), None, f"{why}, dims " + json.dumps(dims)


def timeit(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per callable per round, timed in alternating rounds so machine load drifts hit all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    ts = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            ts[k].append(time.perf_counter() - t0)
    return ts


def paired_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num/den: robust to load that changes between rounds (shared CPUs)."""
    return statistics.median(a / b for a, b in zip(num, den))


def random_deltas(adapters, scale=0.05):
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, m in sorted(adapters.items()):
            m.delta_S.copy_(scale * torch.randn(m.rank, generator=g).to(m.delta_S) * m.S.abs().mean())


def random_v(adapters, k: int):
    """Orthonormal [k, r] per module: projection cost depends on shapes, not on which V."""
    g = torch.Generator().manual_seed(1)
    V = {}
    for name, m in sorted(adapters.items()):
        kk = min(k, m.rank)
        q, _ = torch.linalg.qr(torch.randn(m.rank, kk, generator=g))
        V[name] = q.T.contiguous()
    return SimpleNamespace(V=V, sv={}, meta={"kind": "bench-random"})


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["auto", "mini", "random", "4b-block"], default="auto")
    ap.add_argument("--batch", type=int, default=8, help="sequences per generation / train batch")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--completion-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=12, help="V rows per module for the projection timing")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON here")
    args = ap.parse_args(argv)

    from policy.adapter import get_adapters, merged, wrap_model
    from policy.forward import completion_logprobs, make_batch
    from policy.grpo import dr_grpo_loss
    from policy.model_loading import decoder_layers
    import tempfile

    base, tok, desc = load_base(args.model)
    device = next(base.parameters()).device
    config = TrainConfig()
    targets = config.target_modules
    n_params = sum(p.numel() for p in base.parameters())
    print(f"model: {desc}; {n_params / 1e6:.2f}M params, {base.dtype}, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    V_size = base.config.vocab_size
    g = torch.Generator().manual_seed(0)
    res: dict = {"model": desc, "n_params": n_params, "device": str(device)}

    svd = copy.deepcopy(base)
    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        adapters = wrap_model(svd, targets, cache_dir=cache)
        res["wrap_s_uncached"] = time.perf_counter() - t0
    random_deltas(adapters)
    r_total = sum(m.rank for m in adapters.values())
    print(f"SVD adapter: {len(adapters)} modules, {r_total} trainable params; wrap+SVD {res['wrap_s_uncached']:.2f}s")

    # ---------------------------------------------------------------- (a) rollout tokens/s
    prompts = torch.randint(0, V_size, (args.batch, args.prompt_len), generator=g).to(device)
    gen_kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                  pad_token_id=0, attention_mask=torch.ones_like(prompts))
    n_tok = args.batch * args.new_tokens

    def gen(model):
        with torch.no_grad():
            out = model.generate(prompts, **gen_kw)
        assert out.shape[1] == args.prompt_len + args.new_tokens

    def gen_merged():
        with merged(svd):
            gen(svd)
    t = interleaved({"base": lambda: gen(base), "merged": gen_merged, "factored": lambda: gen(svd)}, args.repeats)
    t_base, t_merged, t_fact = (statistics.median(t[k]) for k in ("base", "merged", "factored"))
    r_merged, r_fact = paired_ratio(t["base"], t["merged"]), paired_ratio(t["base"], t["factored"])

    def remerge():
        for m in adapters.values():
            m._merged_delta = None   # force the rebuild a changed delta would trigger
        with merged(svd):
            pass
    t_merge = timeit(remerge, args.repeats)
    res.update(gen_tok_s_base=n_tok / t_base, gen_tok_s_merged=n_tok / t_merged,
               gen_tok_s_factored=n_tok / t_fact, merge_s=t_merge,
               gen_ratio_merged=r_merged, gen_ratio_factored=r_fact)
    print("\n(a) rollout, greedy, batch %d x %d new tokens" % (args.batch, args.new_tokens))
    print(f"  unwrapped model      {n_tok / t_base:9.1f} tok/s")
    print(f"  SVD, merged weights  {n_tok / t_merged:9.1f} tok/s   ratio {r_merged:.3f}x "
          f"(target >= {TARGET_GEN}x)")
    print(f"  SVD, factored        {n_tok / t_fact:9.1f} tok/s   ratio {r_fact:.3f}x (what merging avoids)")
    print(f"  merge (rebuild all dense weights, once per optimizer step): {t_merge * 1e3:.1f} ms")

    # ---------------------------------------------------------------- (b) train step vs LoRA r=32
    comps = torch.randint(0, V_size, (args.batch, args.completion_len), generator=g).tolist()
    batch = make_batch(prompts[0].tolist(), comps, pad_id=0, device=device)
    adv = torch.randn(args.batch, generator=g).to(device)
    norm = float(args.batch * args.completion_len)

    def step(model, capture_layer=None):
        model.zero_grad(set_to_none=True)
        logp, acts = completion_logprobs(model, batch, capture_layer)
        dr_grpo_loss(logp, None, adv, batch.completion_mask, 0.0, norm).backward()
        return acts

    from peft import LoraConfig, get_peft_model
    lora = get_peft_model(copy.deepcopy(base), LoraConfig(r=32, lora_alpha=32, lora_dropout=0.0,
                                                          target_modules=list(targets)))
    lora_trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    t = interleaved({"svd": lambda: step(svd), "lora": lambda: step(lora)}, args.repeats)
    t_svd, t_lora = statistics.median(t["svd"]), statistics.median(t["lora"])
    r_train = paired_ratio(t["svd"], t["lora"])
    res.update(train_s_svd=t_svd, train_s_lora=t_lora, train_ratio=r_train, lora_trainable=lora_trainable)
    print("\n(b) train step (fwd+bwd, Dr.GRPO loss), batch %d x (%d prompt + %d completion)"
          % (args.batch, args.prompt_len, args.completion_len))
    print(f"  PEFT LoRA r=32 ({lora_trainable} params)   {t_lora * 1e3:8.1f} ms")
    print(f"  SVD adapter ({r_total} params)       {t_svd * 1e3:8.1f} ms   ratio {r_train:.3f}x "
          f"(target <= {TARGET_TRAIN}x)")
    del lora

    # ---------------------------------------------------------------- (c) arm overheads
    from method.arm import ProjectionArm
    from method.hooks import ArmContext, GradBundle
    from policy.model import Policy

    step(svd)
    grads = {n: m.delta_S.grad.clone() for n, m in adapters.items()}
    cfg = TrainConfig(extract_k=args.k)
    ctx = ArmContext(config=cfg, policy=Policy.of(svd, tok, adapters), artifacts_dir=None)
    V = random_v(adapters, args.k)
    halves = {n: 0.5 * x for n, x in grads.items()}
    print(f"\n(c) per-step arm overhead, as a ratio to the plain SVD train step ({t_svd * 1e3:.1f} ms)")
    for mode in ("erase", "measure"):
        arm = ProjectionArm("real", mode, v_source=lambda c, kind: V)
        arm.setup(ctx)

        def hook():
            for n, m in adapters.items():
                m.delta_S.grad.copy_(grads[n])
            arm.grad_hook(GradBundle(modules=adapters, g_s=halves, g_t=halves, step=1))
        t_hook = timeit(hook, max(5, args.repeats))
        res[f"hook_s_{mode}"] = t_hook
        res[f"hook_ratio_{mode}"] = t_hook / t_svd
        label = "erase projection + stats" if mode == "erase" else "vanilla measure-only stats"
        print(f"  {label:32s} {t_hook * 1e3:8.2f} ms   +{100 * t_hook / t_svd:.2f}%  (k={args.k})")

    try:
        # Rebound's per-step work: capture the residual stream in the loss forward the loop already does,
        # then alpha * relu(cos(h, v_concept)) per rollout. Its one-off concept extraction is not per-step.
        from baselines.rebound import rebound_layer, rebound_penalty
        from policy.config import ConfigError
        try:
            layer = rebound_layer(len(decoder_layers(svd)), cfg.rebound_layer_frac, cfg.rebound_layer)
        except ConfigError:       # a model too shallow for the spec's band: any block costs the same to capture
            layer = len(decoder_layers(svd)) - 1
        v_concept = torch.randn(svd.config.hidden_size, generator=g).to(device)
        t = interleaved({"plain": lambda: step(svd), "capture": lambda: step(svd, layer)}, args.repeats)
        t_plain, t_cap = statistics.median(t["plain"]), statistics.median(t["capture"])
        r_cap = paired_ratio(t["capture"], t["plain"])
        acts = step(svd, layer)
        rewards = torch.randn(args.batch, generator=g).to(device)
        t_pen = timeit(lambda: rewards - rebound_penalty(acts, v_concept, cfg.rebound_alpha)[0], max(5, args.repeats))
        extra = (r_cap - 1.0) + t_pen / t_plain      # capture as a paired ratio, penalty as a share
        res.update(rebound_layer=layer, rebound_capture_s=t_cap, rebound_penalty_s=t_pen, rebound_extra_ratio=extra)
        print(f"  {'rebound capture + penalty':32s} {extra * t_plain * 1e3:8.2f} ms   {100 * extra:+.2f}%  "
              f"(layer {layer}; capture step/plain step {r_cap:.3f}x, penalty {t_pen * 1e3:.2f} ms)")
    except Exception as e:  # absent or not buildable here: say so, don't pretend
        res["rebound"] = f"skipped: {type(e).__name__}: {e}"
        print(f"  rebound: skipped ({type(e).__name__}: {e})")

    print("\nsummary: generation merged/unwrapped = %.3fx (target >= %.2f), train SVD/LoRA = %.3fx (target <= %.2f)"
          % (res["gen_ratio_merged"], TARGET_GEN, res["train_ratio"], TARGET_TRAIN))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
