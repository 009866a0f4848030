"""`make gpu-check`: three `full` steps of the real loop on a random-init Qwen3-4B-architecture model, measured.

No network: the model is built from Qwen3-4B's public config (harness.models.qwen3_local), saved, and loaded by path
through load_policy like the hub id. Arm `erase` (the method: SVD wrap, V extraction, projection every step),
G = 8, max_new 1024, every rollout forced to full length (eos suppressed): the worst case a run can meet.
Prints and writes JSON: peak GPU memory beside the --dry-run estimate, seconds per step split into generation /
forward+backward / projection, rollout tokens/s with merged weights vs the unwrapped model, merge_gap.
Random weights: the numbers are costs, never learning. `--cpu` runs the same code on the shrunk config
(2 layers, small width, max_new 128 by default) so CI exercises it in a couple of minutes.

    python -m harness.checks.gpu_check [--cpu] [--out FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

GIB = 2.0**30


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_gib(device: torch.device) -> float:
    from harness.metrics import peak_memory_mb
    return peak_memory_mb(device) / 1024       # GPU: max allocated since the last reset; CPU: peak RSS


def _timed_generate(model, tok, prompts, n, config, device, box: list | None = None):
    """Full-length rollouts (eos suppressed) -> (ids, tokens generated, seconds)."""
    from harness.train.rollout import generate

    _sync(device)
    t0 = time.perf_counter()
    ids = generate(model, tok, prompts, n, config, min_new_tokens=config.max_new_tokens)
    _sync(device)
    dt = time.perf_counter() - t0
    tokens = sum(len(s) for row in ids for s in row)
    if box is not None:
        box.append({"tokens": tokens, "s": dt, "prompt": prompts[0], "completions": ids[0]})
    return ids, tokens, dt


def _problem_set(choice: str) -> tuple[str, str]:
    """(problem set, why). auto: full's own set when its files are here, else the test split's partition."""
    from harness.config import resolve_config
    from sandbox.data import DataError, require_problem_set

    full = resolve_config("full", "erase", 41).problem_set
    if choice != "auto":
        return choice, "given"
    try:
        require_problem_set(full)
        return full, "the full preset's own"
    except DataError as e:
        return "leetcode_test_partition", f"{full} unavailable here ({e}); prompts only set lengths in this check"


def run_check(cpu: bool, steps: int, max_new: int, problem_set: str, workdir: Path) -> dict[str, Any]:
    import harness.models.substrate as S
    import harness.train.loop as L
    from harness.config import resolve_config
    from harness.models.model_loading import estimate_memory, load_policy
    from harness.models.qwen3_local import save_local_qwen3
    from harness.train.evaluate import merge_gap
    from harness.train.rollout import PromptEncoder
    from sandbox.data import load_problem_set
    from sandbox.executors import make_executor
    from sandbox.grader import Grader

    device = torch.device("cpu" if cpu else "cuda")
    out: dict[str, Any] = {"label": ("gpu-check --cpu: the full code path on Qwen3-4B's architecture shrunk to "
                                     "2 layers (random weights; costs, not learning)") if cpu else
                           "gpu-check: the full code path on a random-init Qwen3-4B-architecture model "
                           "(costs, not learning)"}
    ps, why = _problem_set(problem_set)
    out["problem_set"], out["problem_set_why"] = ps, why
    t0 = time.perf_counter()
    model_dir = save_local_qwen3(workdir / "model", shrink=cpu, device=str(device))
    out["t_build_model_s"] = time.perf_counter() - t0
    for mod in (L, S):      # SVD factors (2x the model), pool and V of this throwaway model stay in workdir
        mod.ARTIFACTS_DIR = workdir / "artifacts"
    cfg = resolve_config("full", "erase", 41, dict(
        model=str(model_dir), dtype="bfloat16", max_new_tokens=max_new, steps=steps, sandbox="process",
        problem_set=ps, grade_workers=2 if cpu else 8))
    out["config"] = {k: getattr(cfg, k) for k in ("preset", "arm", "problem_set", "dtype", "grad_checkpointing",
                                                   "prompts_per_step", "group_size", "max_new_tokens",
                                                   "max_prompt_tokens", "steps")}
    out["config"].update(G_s=cfg.student_per_group, G_t=cfg.teacher_per_group, rollouts="forced to full length")

    # 1. rollouts on the unwrapped model (plain nn.Linear), same batch shape as a step's student generation
    problems = load_problem_set(ps).train[: cfg.prompts_per_step]
    base, tok = load_policy(cfg, device=device, verbose=False)
    out["attn_impl"] = f"{base.load_info.attn_impl} ({base.load_info.attn_why})"
    out["n_params"] = base.load_info.n_params
    prompts = [PromptEncoder(tok, cfg)(p) for p in problems]
    _timed_generate(base, tok, prompts[:1], 1, dataclasses.replace(cfg, max_new_tokens=4), device)  # kernels warm
    _, tok_n, dt = _timed_generate(base, tok, prompts, cfg.student_per_group, cfg, device)
    out["unwrapped"] = {"tokens": tok_n, "s": dt, "tokens_per_s": tok_n / dt}
    del base
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # 2. the loop's own setup (load, SVD wrap, V extraction, pool) and steps, generation forced to full length
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    run = L._Run(cfg, workdir / "run", progress=True)
    out["t_setup_s"] = time.perf_counter() - t0
    out["peak_setup_gib"] = _peak_gib(device)
    gens: list[dict] = []
    L.generate = lambda m, t, p, n, c, **k: _timed_generate(m, t, p, n, c, device, gens)[0]   # this process only
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
    rows = []
    with make_executor("process", workers=cfg.grade_workers) as ex:
        grader = Grader(ex)
        for step in range(steps):
            n_proj = len(proj)
            t = time.perf_counter()
            row = run.step(step, grader)
            _sync(device)
            g = gens[-1]
            t_proj = sum(proj[n_proj:])
            rows.append({"step": step + 1, "t_step_s": time.perf_counter() - t, "t_generation_s": row["t_gen"],
                         "t_grade_s": row["t_grade"], "t_forward_backward_s": row["t_fwd_bwd"],
                         "t_projection_s": t_proj, "t_clip_optimizer_s": row["t_hook"] - t_proj,
                         "rollout_tokens": g["tokens"], "rollout_tokens_per_s": g["tokens"] / g["s"],
                         "live_groups": row["live_groups"], "peak_gib": _peak_gib(device)})
            print(f"[gpu-check] step {step + 1}: " + ", ".join(f"{k} {v:.3g}" for k, v in rows[-1].items()
                                                                if isinstance(v, float)), file=sys.stderr)
    out["steps"] = rows
    later = rows[1:] or rows        # step 1 pays one-off costs (first merge, allocator growth)
    merged_tps = sum(r["rollout_tokens_per_s"] for r in later) / len(later)
    out["rollout_tokens_per_s"] = {"merged": merged_tps, "unwrapped": out["unwrapped"]["tokens_per_s"],
                                   "merged_over_unwrapped": merged_tps / out["unwrapped"]["tokens_per_s"],
                                   "merged_from_steps": [r["step"] for r in later]}
    out["mean_step_s"] = {k: sum(r[k] for r in later) / len(later)
                          for k in ("t_step_s", "t_generation_s", "t_forward_backward_s", "t_projection_s",
                                    "t_clip_optimizer_s", "t_grade_s")}
    out["merge_gap"] = merge_gap(run.model, gens[-1]["prompt"], gens[-1]["completions"], tok.pad_token_id)
    out["peak_gib"] = max(max(r["peak_gib"] for r in rows), out["peak_setup_gib"])
    out["peak_kind"] = "torch.cuda.max_memory_allocated" if device.type == "cuda" else "process peak RSS (CPU)"
    longest = max(len(p) for p in run.encoder._cache.values())
    est = estimate_memory(cfg)
    out["dry_run_estimate_gib"] = est["total_gib"]
    out["estimate_at_longest_prompt_gib"] = estimate_memory(cfg, prompt_tokens=longest)["total_gib"]
    out["longest_prompt_tokens"] = longest
    if device.type == "cuda":
        out["device"] = torch.cuda.get_device_name(device)
        out["fits_80gb"] = out["peak_gib"] < 80
    else:
        out["device"] = "cpu"
    import transformers
    out["torch"], out["transformers"] = torch.__version__, transformers.__version__
    return out


def _summary(r: dict[str, Any]) -> str:
    m, tps = r["mean_step_s"], r["rollout_tokens_per_s"]
    lines = [
        r["label"],
        f"device {r['device']}, attn {r['attn_impl']}, {r['n_params'] / 1e6:.2f}M params, problem set "
        f"{r['problem_set']} ({r['problem_set_why']})",
        f"peak memory ({r['peak_kind']}): {r['peak_gib']:.2f} GiB (setup {r['peak_setup_gib']:.2f}); "
        f"--dry-run estimate {r['dry_run_estimate_gib']:.2f} GiB ({r['estimate_at_longest_prompt_gib']:.2f} at the "
        f"longest prompt, {r['longest_prompt_tokens']} tokens)",
        f"s/step (mean of steps {tps['merged_from_steps']}): {m['t_step_s']:.2f} = generation {m['t_generation_s']:.2f}"
        f" + forward/backward {m['t_forward_backward_s']:.2f} + projection {m['t_projection_s']:.3f} + clip/optimizer "
        f"{m['t_clip_optimizer_s']:.3f} + grading {m['t_grade_s']:.2f} (+ the rest)",
        f"rollout tokens/s: merged {tps['merged']:.1f}, unwrapped {tps['unwrapped']:.1f} "
        f"(ratio {tps['merged_over_unwrapped']:.3f})",
        f"merge_gap {r['merge_gap']}, setup (load + SVD + V + pool) {r['t_setup_s']:.1f} s, "
        f"model build {r['t_build_model_s']:.1f} s",
    ]
    if "fits_80gb" in r:
        lines.append(f"fits in 80 GB: {r['fits_80gb']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="the shrunk config on CPU (CI); default: one CUDA GPU")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--max-new", type=int, default=None, help="default 1024 (GPU), 128 (--cpu)")
    ap.add_argument("--problem-set", default="auto", help="auto: full's own when its files are here, else "
                                                          "leetcode_test_partition (prompts only set lengths)")
    ap.add_argument("--out", type=Path, default=None, help="JSON path (default artifacts/gpu_check[-cpu].json)")
    args = ap.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here; `make gpu-check-cpu` runs the same code on CPU", file=sys.stderr)
        return 2
    from harness.paths import ARTIFACTS_DIR
    out_path = args.out or ARTIFACTS_DIR / f"gpu_check{'-cpu' if args.cpu else ''}.json"
    max_new = args.max_new or (128 if args.cpu else 1024)
    if not args.cpu:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-", dir=ARTIFACTS_DIR if ARTIFACTS_DIR.is_dir() else None))
    import harness.models.substrate as S
    import harness.train.loop as L

    # run_check points the loop and substrate at the throwaway workdir and times the loop's generate: module
    # globals, so restore them (a caller in the same process, e.g. a test session, must not inherit them)
    saved = (L.ARTIFACTS_DIR, S.ARTIFACTS_DIR, L.generate, torch.get_num_threads())
    try:
        if args.cpu:
            torch.set_num_threads(1)       # the loop's CPU setting (harness.config.cpu_threads)
        result = run_check(args.cpu, args.steps, max_new, args.problem_set, work)
    finally:
        L.ARTIFACTS_DIR, S.ARTIFACTS_DIR, L.generate = saved[:3]
        torch.set_num_threads(saved[3])
        shutil.rmtree(work, ignore_errors=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(_summary(result))
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
