"""`make gpu-check`: the `full` preset's costs on one GPU, measured by parts, offline, from tracked files only.

Made for a short, offline GPU window with its own interpreter (`make gpu-check` falls back to `python3` where no
.venv exists): no hub (HF_HUB_OFFLINE=1), no data files (the repository's own `mini` problems set the prompts), no
bubblewrap needed (without it, random-model text is graded with plain rlimits: an explicit opt-out, recorded),
and a weak V from random weights does not stop it (allow_weak_v, recorded). Random weights: costs, never learning.

Phases, each printed and written to the JSON as it finishes (a timeout still leaves what was measured):

    environment     torch / transformers / device, flash-attn imported for real (or why not), grader isolation
    model           a random-init Qwen3-4B-architecture model built from the public config, saved, loaded by path
    svd             fp32 SVD per weight shape: one matrix vs a batch; bf16- vs fp32-stored factors' merge error
    setup           the loop's own set-up (load, SVD wrap (no cache file), V extraction, pool), timed
    reconstruction  the wrapped policy at delta_S = 0 vs the original: max weight error, logit KL
    steps           N loop steps, every student rollout forced to max_new tokens; the last one also runs the
                    teacher-split diagnostic backward (`teacher_split_every`), timed apart; with --per-row-step,
                    one more step on the per-row reference path (shared_prefix=False) beside them
    eval_batch      one held-out evaluation batch at the evaluation settings, forced to --eval-new tokens (256 on
                    a GPU: on one H200 a 32-row batch decodes ~54 ms per token, so the full 1,536 would take ~85 s
                    of a short window); the projection scales it per token to eval_max_new_tokens
    projection      a `full` run and the main matrix from the parts above (worst case: every rollout full length)

    python -m harness.checks.gpu_check [--cpu] [--steps N] [--max-new N] [--eval-new N] [--per-row-step]
                                       [--out FILE]

`--cpu` runs the same code on the architecture shrunk to 2 layers (CI's `make gpu-check-cpu`).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

GIB = 2.0**30
CHECK_PROBLEM_SET = "mini"      # tracked in the repository: travels to an offline GPU machine with the code
LEETCODE_TEST_PROBLEMS = 119    # the pinned test split (leetcode_test_medhard.jsonl): what `full` evaluates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _memory(device: torch.device) -> dict[str, float]:
    """Peak memory since the last reset, GiB: allocated (tensors) and reserved (what the allocator holds)."""
    if device.type == "cuda":
        return {"peak_allocated_gib": torch.cuda.max_memory_allocated(device) / GIB,
                "peak_reserved_gib": torch.cuda.max_memory_reserved(device) / GIB}
    from method.metrics import peak_memory_mb
    return {"peak_rss_gib": peak_memory_mb(device) / 1024}


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class Report:
    """The check's JSON, rewritten atomically after every phase, and one stderr line per phase."""

    def __init__(self, path: Path):
        self.path, self.data = path, {"phases_done": []}
        path.parent.mkdir(parents=True, exist_ok=True)

    def phase(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        t0 = time.perf_counter()
        print(f"[gpu-check] {name} ...", file=sys.stderr, flush=True)
        out = fn()
        out["phase_s"] = time.perf_counter() - t0
        self.data[name] = out
        self.data["phases_done"].append(name)
        self.write()
        brief = ", ".join(f"{k} {_fmt(v)}" for k, v in out.items() if isinstance(v, (int, float, str, bool)))
        print(f"[gpu-check] {name} done: {brief}", file=sys.stderr, flush=True)
        return out

    def write(self) -> None:
        from sandbox.artifacts import write_atomic

        text = json.dumps(self.data, indent=1, default=str) + "\n"
        write_atomic(self.path, lambda tmp: tmp.write_text(text))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ----------------------------------------------------------------------------------------------- phases

def check_environment(cpu: bool) -> dict[str, Any]:
    """Offline flags, versions, flash-attn by a real import, and how the grader will isolate programs."""
    import shutil as sh

    import transformers

    from sandbox.executors import ALLOW_UNSANDBOXED_ENV

    out: dict[str, Any] = {"python": sys.executable, "torch": torch.__version__,
                           "transformers": transformers.__version__, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE")}
    out["device"] = "cpu" if cpu else torch.cuda.get_device_name(0)
    try:
        import flash_attn  # noqa: F401  (a found module can still fail to load its CUDA extension)

        out["flash_attn"] = f"imported {getattr(flash_attn, '__version__', '?')}"
    except Exception as e:  # ImportError, or an ABI mismatch raised as OSError/RuntimeError
        out["flash_attn"] = f"not used: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    why = "bubblewrap is not installed here"
    if sh.which("bwrap"):         # installed is not enough: the grader's own start-up must isolate (netns, ...)
        from sandbox.executors import ProcessExecutor

        ex = ProcessExecutor(workers=1, allow_unsandboxed=True)
        try:
            ex.start()
            why = None if ex.isolated else f"bubblewrap does not start here ({ex.fallback_reason})"
        finally:
            ex.close()
    if why is None:
        out["grader_isolation"] = "bubblewrap"
    else:
        os.environ[ALLOW_UNSANDBOXED_ENV] = "1"
        out["grader_isolation"] = (f"NONE: {why}; gpu-check set {ALLOW_UNSANDBOXED_ENV}=1 to grade its random "
                                   f"model's text with plain rlimits (an opt-out for this check, never for a run)")
    return out


def check_svd(model, target_modules, device: torch.device) -> dict[str, Any]:
    """Per distinct weight shape: seconds for one fp32 SVD and per matrix in a batch, and the merge error of
    bf16- vs fp32-stored factors at delta_S = 0 (max |round(U S Vh) - W|), on that shape's first matrix."""
    from policy.adapter import _svd_by_shape, _target_linears

    lin = _target_linears(model, target_modules)
    shapes: dict[tuple, list[str]] = {}
    for n, m in lin.items():
        shapes.setdefault(tuple(m.weight.shape), []).append(n)
    rows = []
    for shape, names in shapes.items():
        W = lin[names[0]].weight.detach()
        _svd_by_shape({"w": W})                               # solver warm-up for this shape
        _sync(device)
        t0 = time.perf_counter()
        U, S, Vh = _svd_by_shape({"w": W})["w"]
        _sync(device)
        t_one = time.perf_counter() - t0
        nb = min(len(names), 8)
        t0 = time.perf_counter()
        _svd_by_shape({n: lin[n].weight for n in names[:nb]}, batch=nb)
        _sync(device)
        t_batch = (time.perf_counter() - t0) / nb
        err = {}
        for label, dt in (("bf16_factors", W.dtype), ("fp32_factors", torch.float32)):
            rec = ((U.to(dt).float() * S) @ Vh.to(dt).float()).to(W.dtype)
            err[label] = (rec.float() - W.float()).abs().max().item()
        rows.append({"shape": list(shape), "count": len(names), "s_one": t_one, "s_per_matrix_batched": t_batch,
                     "batch": nb, "max_merge_err": err, "max_abs_w": W.float().abs().max().item()})
        del U, S, Vh
    return {"shapes": rows, "matrices": len(lin),
            "projected_s_one_at_a_time": sum(r["count"] * r["s_one"] for r in rows),
            "projected_s_batched": sum(r["count"] * r["s_per_matrix_batched"] for r in rows)}


@torch.no_grad()
def check_reconstruction(run, original, device: torch.device, prompt: list[int]) -> dict[str, Any]:
    """The loop's wrapped policy at delta_S = 0 (before any step) against the original model: the untrained
    policy of every `full` run is this reconstruction, and its step-0 evaluation measures it."""
    from policy.adapter import _target_linears, get_adapters, merged

    orig_w = {n: m.weight for n, m in _target_linears(original, run.config.target_modules).items()}
    ids = torch.tensor([prompt], device=device)
    ref = original(ids).logits.float().log_softmax(-1)              # [1, T, V]
    run.policy.model.eval()
    fac = run.policy.model(ids).logits.float().log_softmax(-1)
    with merged(run.policy.model):
        err = max((a.weight.float() - orig_w[n].float()).abs().max().item()
                  for n, a in get_adapters(run.policy.model).items())
        den = run.policy.model(ids).logits.float().log_softmax(-1)

    def kl(lq):     # KL(original || wrapped) per position, nats
        return (ref.exp() * (ref - lq)).sum(-1)
    return {"weights": "random init (not Qwen3-4B's trained weights)", "tokens": len(prompt),
            "adapter_form": run.config.adapter_form,
            "max_weight_err_merged": err,
            "kl_factored_mean": kl(fac).mean().item(), "kl_factored_max": kl(fac).max().item(),
            "kl_merged_mean": kl(den).mean().item(), "kl_merged_max": kl(den).max().item()}


def _paths(run) -> dict[str, str]:
    """Which code ran the step: the loss layout and the sampler (policy.prefix / harness.train.sampling).

    Memory: the packed layout (sdpa/eager) computes each half's [T, P + T] attention scores per head, T = the half's
    tokens, the cross-row block included, and then masks it; with flash-attention (the GPU default when installed)
    the padded layout runs instead, which never forms cross-row scores. A `full` run on sdpa with long completions
    is where the packed layout's peak can exceed the padded one's: this check's peak memory is the measure."""
    from harness.train import sampling
    from policy.prefix import can_pack
    from harness.train.rollout import generation_config

    if not run.config.shared_prefix:
        return {"loss_layout": "per-row", "sampler": "generate"}
    model = run.policy.model
    gcfg = generation_config(model, run.policy.tokenizer, run.config, min_new_tokens=run.config.max_new_tokens)
    return {"loss_layout": "packed" if can_pack(model) else "padded",
            "sampler": "lean loop" if sampling.supported(gcfg, model) else "generate on a shared prefill"}


def _timed_generate(model, tok, prompts, n, config, device, box: list):
    """The loop's generate, rollouts forced to full length (eos suppressed); appends {tokens, s} to box."""
    from harness.train.rollout import generate

    _sync(device)
    t0 = time.perf_counter()
    ids = generate(model, tok, prompts, n, config, min_new_tokens=config.max_new_tokens)
    _sync(device)
    box.append({"tokens": sum(len(s) for row in ids for s in row), "s": time.perf_counter() - t0,
                "prompt": prompts[0], "completions": ids[0]})
    return ids


def run_check(cpu: bool, steps: int, max_new: int, eval_new: int, workdir: Path, report: Report,
              per_row_step: bool = False) -> None:
    from harness.presets import resolve_config
    from harness.train.evaluate import eval_sampling
    import harness.train.loop as L
    from policy.model_loading import estimate_memory, load_policy
    from policy.qwen3_local import save_local_qwen3
    from sandbox.backends import make_executor
    from sandbox.grader import Grader

    device = torch.device("cpu" if cpu else "cuda")
    report.data["label"] = ("gpu-check --cpu: the full code path on Qwen3-4B's architecture shrunk to 2 layers "
                            "(random weights; costs, not learning)") if cpu else \
        "gpu-check: the full code path on a random-init Qwen3-4B-architecture model (costs, not learning)"
    report.phase("environment", lambda: check_environment(cpu))
    model_dir = workdir / "model"
    report.phase("model", lambda: {"path": str(save_local_qwen3(model_dir, shrink=cpu, device=str(device)))})
    cfg = resolve_config("full", "erase", 41, dict(
        model=str(model_dir), dtype="bfloat16", max_new_tokens=max_new, steps=steps, sandbox="process",
        problem_set=CHECK_PROBLEM_SET, grade_workers=2 if cpu else 8,
        allow_weak_v=True,                  # random weights: V is noise; recorded below, never a run's setting
        teacher_split_every=steps,          # the last step also runs the teacher-split diagnostic backward
        eval_max_new_tokens=eval_new))
    report.data["config"] = {k: getattr(cfg, k) for k in (
        "preset", "arm", "problem_set", "dtype", "adapter_form", "grad_checkpointing", "prompts_per_step", "group_size",
        "max_new_tokens", "max_prompt_tokens", "steps", "eval_samples", "eval_max_new_tokens", "eval_top_p",
        "eval_top_k", "eval_temperature", "teacher_split_every", "allow_weak_v")}
    report.data["config"].update(G_s=cfg.student_per_group, G_t=cfg.teacher_per_group,
                                 rollouts="forced to full length (eos suppressed)",
                                 problems=f"{CHECK_PROBLEM_SET} (tracked in the repository; full trains on LeetCode)")

    box: dict[str, Any] = {}

    def svd():
        m, _ = load_policy(cfg, device=device, verbose=False)
        out = check_svd(m, cfg.target_modules, device)
        box["original"] = m     # kept for the reconstruction phase (unwrapped, bf16): setup's peak includes it
        return out
    report.phase("svd", svd)

    def setup():
        _reset_peak(device)
        t0 = time.perf_counter()
        run = L._Run(cfg, workdir / "run", progress=True, svd_cache=False)
        box["run"] = run
        return {"s": time.perf_counter() - t0, "attn_impl": f"{run.resolved['attn_impl']} ({run.resolved['attn_why']})",
                "n_params": run.resolved["n_params"], "v_validation": run.resolved.get("v_validation"),
                **_memory(device)}
    report.phase("setup", setup)
    run = box["run"]
    first = run.policy.encoder(run.train_problems[0])
    report.phase("reconstruction", lambda: check_reconstruction(run, box["original"], device, first))
    del box["original"]
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    gens: list[dict] = []
    saved_generate = L.generate
    L.generate = lambda m, t, p, n, c, **k: _timed_generate(m, t, p, n, c, device, gens)    # this process only
    proj: list[float] = []
    real_hook = run.arm.grad_hook

    def timed_hook(bundle):
        _sync(device)
        t = time.perf_counter()
        res = real_hook(bundle)
        _sync(device)
        proj.append(time.perf_counter() - t)
        return res
    run.arm.grad_hook = timed_hook
    rows: list[dict] = []
    ex = make_executor("process", workers=cfg.grade_workers)
    try:
        ex.start()
        grader = Grader(ex)
        report.data["grader"] = getattr(ex, "description", "") or ex.kind

        def one_step(step: int) -> dict[str, Any]:
            n_proj = len(proj)
            _reset_peak(device)
            t = time.perf_counter()
            row = run.step(step, grader)
            _sync(device)
            g = gens[-1]
            t_proj = sum(proj[n_proj:])
            r = {"step": step + 1, "t_step_s": time.perf_counter() - t, "t_generation_s": row["t_gen"],
                 "t_grade_s": row["t_grade"], "t_forward_backward_s": row["t_fwd_bwd"], "t_projection_s": t_proj,
                 "t_clip_optimizer_s": row["t_hook"] - t_proj, "rollout_tokens": g["tokens"],
                 "rollout_tokens_per_s": g["tokens"] / g["s"], "live_groups": row["live_groups"],
                 "teacher_split": (step + 1) % cfg.teacher_split_every == 0,
                 "shared_prefix": run.config.shared_prefix, **_paths(run), **_memory(device)}
            rows.append(r)
            return r
        for step in range(steps):
            report.phase(f"step_{step + 1}", lambda s=step: one_step(s))
        report.data["steps"] = rows
        if per_row_step:      # the same loop on the per-row reference path (shared_prefix=False), one more step
            def per_row():
                run.config = dataclasses.replace(cfg, shared_prefix=False)
                try:
                    r = one_step(steps)
                    rows.pop()            # kept apart: the projection reads the shared path's steps
                    return r
                finally:
                    run.config = cfg
            report.phase("step_per_row", per_row)

        def eval_batch():
            from policy.adapter import merged

            sampling = eval_sampling(cfg)
            batch = max(1, cfg.prompts_per_step * cfg.student_per_group)       # evaluate()'s batch
            prompts = [run.policy.encoder(p) for p in run.eval_set[:batch]]
            _reset_peak(device)
            with merged(run.policy.model):
                ids = _timed_generate(run.policy.model, run.policy.tokenizer, prompts, 1, sampling, device, gens)
            g = gens[-1]
            texts = [(p, run.policy.tokenizer.decode(s[0], skip_special_tokens=True), None) for p, s in zip(run.eval_set, ids)]
            t0 = time.perf_counter()
            grader.grade_many(texts)
            return {"rows": len(prompts), "new_tokens": sampling.max_new_tokens, "s_generate": g["s"],
                    "s_grade": time.perf_counter() - t0, "tokens_per_s": g["tokens"] / g["s"], **_memory(device)}
        report.phase("eval_batch", eval_batch)
    finally:
        ex.close()
        L.generate = saved_generate
        run.arm.grad_hook = real_hook
    report.phase("projection", lambda: project(report.data, cfg, estimate_memory, run))


def project(d: dict[str, Any], cfg, estimate_memory, run) -> dict[str, Any]:
    """A `full` run's wall time from the parts (worst case: every rollout at its full length)."""
    from harness.arms import PREREGISTERED_ARMS
    from harness.presets import resolve_config
    from policy.config import PREREGISTERED_SEEDS

    full = resolve_config("full", "erase", 41)
    steps = d["steps"]
    plain = [s for s in steps[1:] if not s["teacher_split"]] or [s for s in steps if not s["teacher_split"]]
    split = [s for s in steps if s["teacher_split"]]
    t_plain = sum(s["t_step_s"] for s in plain) / len(plain)
    t_split_extra = max(0.0, (sum(s["t_step_s"] for s in split) / len(split)) - t_plain) if split else 0.0
    n_split = full.steps // full.teacher_split_every if full.teacher_split_every else 0
    n_evals = 1 + (full.steps // full.eval_every if full.eval_every else 0) + \
        (0 if full.eval_every and full.steps % full.eval_every == 0 else 1)
    eb = d["eval_batch"]
    n_gen_eval = LEETCODE_TEST_PROBLEMS * full.eval_samples
    # decode time grows ~linearly in tokens at these lengths (per-token latency; attention over <2k positions)
    t_batch = eb["s_generate"] * full.eval_max_new_tokens / eb["new_tokens"] + eb["s_grade"]
    t_eval = math.ceil(n_gen_eval / eb["rows"]) * t_batch
    setup = d["setup"]["s"]
    run_s = setup + full.steps * t_plain + n_split * t_split_extra + n_evals * t_eval
    lengths = sorted(len(run.policy.encoder(p)) for p in run.train_problems)
    tokenizer = "the stand-in (policy.qwen3_local), not Qwen's: Qwen3-4B's tokenizer is not on this machine"
    real = _hub_tokenizer(full)
    if real is not None:         # the real tokenizer on disk (offline cache or a path): its lengths set the estimate
        from policy.encode import PromptEncoder

        enc = PromptEncoder(real, full)
        lengths, tokenizer = sorted(len(enc(p)) for p in run.train_problems), f"{full.model} (from disk)"
    est = estimate_memory(full)
    return {
        "basis": "worst case: every training and evaluation rollout at its full length; random weights; steps timed "
                 "at the check's own prompts (mini problems under the stand-in tokenizer, not LeetCode under Qwen's)",
        "steps_per_run": full.steps, "s_per_step": t_plain, "s_teacher_split_extra": t_split_extra,
        "teacher_split_steps": n_split,
        "s_per_eval_batch": t_batch, "eval_batch_scaled_from_tokens": eb["new_tokens"],
        "s_per_full_eval": t_eval, "full_eval_generations": n_gen_eval, "evals_per_run": n_evals,
        "s_setup": setup, "s_per_full_run": run_s, "h_per_full_run": run_s / 3600,
        "main_matrix_runs": len(PREREGISTERED_ARMS) * len(PREREGISTERED_SEEDS),
        "h_main_matrix_one_gpu": run_s * len(PREREGISTERED_ARMS) * len(PREREGISTERED_SEEDS) / 3600,
        "prompt_tokens": {"min": lengths[0], "median": lengths[len(lengths) // 2], "max": lengths[-1],
                          "tokenizer": tokenizer} if lengths else None,
        "dry_run_estimate_gib": est["total_gib"],
        "dry_run_estimate_at_check_prompts_gib": estimate_memory(full, prompt_tokens=lengths[-1])["total_gib"]
        if lengths else None,
    }


def _hub_tokenizer(config):
    """full's own tokenizer when it is on disk (HF_HUB_OFFLINE: the local cache only), else None."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(config.model)
    except Exception:  # not cached / no network: the check says it used the stand-in
        return None


def _summary(d: dict[str, Any]) -> str:
    lines = [d.get("label", "gpu-check"), f"phases done: {', '.join(d['phases_done'])}"]
    env = d.get("environment", {})
    lines.append(f"device {env.get('device')}, torch {env.get('torch')}, transformers {env.get('transformers')}, "
                 f"flash-attn: {env.get('flash_attn')}; grader isolation: {env.get('grader_isolation')}")
    if "svd" in d:
        s = d["svd"]
        lines.append(f"SVD of {s['matrices']} matrices: {s['projected_s_one_at_a_time']:.1f} s one at a time, "
                     f"{s['projected_s_batched']:.1f} s batched by shape (projected from one per shape)")
    if "setup" in d:
        lines.append(f"setup (load + SVD wrap + V + pool) {d['setup']['s']:.1f} s; attn {d['setup']['attn_impl']}")
    if "reconstruction" in d:
        r = d["reconstruction"]
        lines.append(f"delta_S = 0 vs original: max weight error {r['max_weight_err_merged']:.3g}, logit KL mean "
                     f"{r['kl_factored_mean']:.3g} (factored) / {r['kl_merged_mean']:.3g} (merged)")
    for s in d.get("steps", []):
        mem = ", ".join(f"{k} {v:.2f}" for k, v in s.items() if k.startswith("peak"))
        lines.append(f"step {s['step']}{' (+teacher split)' if s['teacher_split'] else ''}: {s['t_step_s']:.2f} s = "
                     f"generation {s['t_generation_s']:.2f} + fwd/bwd {s['t_forward_backward_s']:.2f} + projection "
                     f"{s['t_projection_s']:.3f} + grading {s['t_grade_s']:.2f}; {s['rollout_tokens_per_s']:.0f} "
                     f"rollout tokens/s; {mem}"
                     + (f"; loss {s['loss_layout']}, sampler {s['sampler']}" if "loss_layout" in s else ""))
    if "step_per_row" in d and len(d.get("steps", [])) > 1:
        a, b = d["steps"][1], d["step_per_row"]
        lines.append(f"per-row path (shared_prefix=False), step {b['step']}: fwd/bwd {b['t_forward_backward_s']:.2f} s "
                     f"vs shared {a['t_forward_backward_s']:.2f} s (step {a['step']}); generation "
                     f"{b['t_generation_s']:.2f} vs {a['t_generation_s']:.2f} s; peak "
                     + ", ".join(f"{k} {b[k]:.2f} vs {a[k]:.2f}" for k in b if k.startswith("peak")))
    if "eval_batch" in d:
        e = d["eval_batch"]
        lines.append(f"eval batch: {e['rows']} rows x {e['new_tokens']} tokens in {e['s_generate']:.1f} s "
                     f"(+ grading {e['s_grade']:.2f} s)")
    if "projection" in d:
        p = d["projection"]
        lines.append(f"projected (worst case) full run: {p['h_per_full_run']:.2f} h = setup {p['s_setup']:.0f} s + "
                     f"{p['steps_per_run']} x {p['s_per_step']:.1f} s + {p['evals_per_run']} evals x "
                     f"{p['s_per_full_eval']:.0f} s; "
                     f"main matrix ({p['main_matrix_runs']} runs) {p['h_main_matrix_one_gpu']:.1f} h on one GPU")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="the shrunk config on CPU (CI); default: one CUDA GPU")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-new", type=int, default=None, help="training rollouts; default 1024 (GPU), 128 (--cpu)")
    ap.add_argument("--eval-new", type=int, default=None,
                    help="evaluation batch's forced length; default 256 (GPU), 128 (--cpu); projected per token "
                         "to the full preset's eval_max_new_tokens")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default artifacts/gpu_check[-cpu].json)")
    ap.add_argument("--per-row-step", action="store_true",
                    help="one more step on the per-row (shared_prefix=False) path beside the shared ones (a GPU "
                         "window of 15 minutes fits the check without it; with it, ~1.5 min more on one H200)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")        # an offline machine: never wait on the hub
    if not args.cpu and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; `make gpu-check-cpu` runs the same code on CPU", file=sys.stderr)
        return 2
    from sandbox.paths import ARTIFACTS_DIR

    out_path = args.out or ARTIFACTS_DIR / f"gpu_check{'-cpu' if args.cpu else ''}.json"
    max_new = args.max_new or (128 if args.cpu else 1024)
    eval_new = args.eval_new or (128 if args.cpu else 256)
    report = Report(out_path)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    import harness.train.loop as L
    import sandbox.artifacts as S

    # the loop and artifact_path (substrate, pool, V) write into the throwaway workdir; module globals, so
    # restore them (a caller in the same process, e.g. a test session, must not inherit them)
    saved = (L.ARTIFACTS_DIR, S.ARTIFACTS_DIR, torch.get_num_threads(), os.environ.get("RH_ALLOW_UNSANDBOXED"))
    try:
        L.ARTIFACTS_DIR = S.ARTIFACTS_DIR = work / "artifacts"
        if args.cpu:
            torch.set_num_threads(1)       # the loop's CPU setting (policy.config.cpu_threads)
        try:
            run_check(args.cpu, args.steps, max_new, eval_new, work, report, per_row_step=args.per_row_step)
        except Exception as e:            # what was measured stays in the JSON, with the failure beside it
            report.data["error"] = f"{type(e).__name__}: {e}"
            report.write()
            raise
    finally:
        L.ARTIFACTS_DIR, S.ARTIFACTS_DIR = saved[:2]
        torch.set_num_threads(saved[2])
        if saved[3] is None:
            os.environ.pop("RH_ALLOW_UNSANDBOXED", None)
        else:
            os.environ["RH_ALLOW_UNSANDBOXED"] = saved[3]
        shutil.rmtree(work, ignore_errors=True)
    print(_summary(report.data))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
