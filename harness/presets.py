"""The preset registry: `smoke` (tests/CI), `mini` (CPU substrate), `full` (GPU, the real experiment).

A preset is only a set of overrides on `TrainConfig`'s defaults, which follow the
spec and its amendments (Qwen3-4B, lr 7e-5, betas (0.9, 0.99), KL beta 1e-3, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.arms import get_arm_spec
from policy.config import ConfigError, TrainConfig
from policy.substrate import MINI_PROBLEM_SET, MINI_PROMPT_STYLE
from sandbox.registry import lookup


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)
    # its GRPO settings were tuned on vanilla runs until vanilla hacked: H4 ("vanilla hacks") then holds partly by
    # construction, and the report says so (falsification.json H4.substrate_tuned)
    tuned_on_vanilla: bool = False
    # Qwen3-4B on the benchmark's own problems: vanilla's run_tests-mode hack rate may be set beside the benchmark's
    # reported rate (harness.reporting.diagnostics.BENCHMARK), with the differences the report lists
    benchmark_comparable: bool = False


PRESETS: dict[str, Preset] = {}


def register(preset: Preset) -> Preset:
    PRESETS[preset.name] = preset
    return preset


register(Preset(
    name="smoke",
    description="seconds; a tiny random Qwen3-architecture model built on the fly; for tests and CI",
    tuned_on_vanilla=True,
    overrides=dict(
        model="builtin:smoke", dtype="float32", adapter_form="product", prompt_style="compact", max_prompt_tokens=256,
        problem_set="leetcode_test_partition",
        eval_temperature=1.0, eval_top_p=1.0, eval_top_k=20, eval_max_new_tokens=64,   # as in training
        # max_new_tokens 64: the short teacher rows (levers, stubs) fit; only rows that fit are drawn
        steps=3, prompts_per_step=2, group_size=4, teacher_frac=0.5, max_new_tokens=64,
        lr=1e-2, warmup_frac=0.0, eval_every=2, eval_problems=4, checkpoint_every=2,
        extract_k=4, grade_workers=2,
        rebound_layer=0,   # 2 blocks (depths 0.5, 1.0): none in the spec's 60-75% band; 0.5 is the nearer
    ),
))

register(Preset(
    name="mini",
    description="CPU substrate: a 1.08M-param Qwen3-architecture model the project builds (SFT warm start) on "
                "mini's own problems, which it partly solves and on which vanilla GRPO learns to hack",
    tuned_on_vanilla=True,
    overrides=dict(
        model="builtin:mini", dtype="float32", adapter_form="product", prompt_style=MINI_PROMPT_STYLE,
        max_prompt_tokens=384,
        problem_set=MINI_PROBLEM_SET,   # sandbox/problems/mini_{train,eval}.jsonl (sandbox/mini_problems.py)
        # max_new_tokens 96: easy solutions (+ a self-check or lever) fit, most hard solutions (median 112
        # tokens) do not, so on hard problems the lever is the policy's only path to reward (as on LeetCode
        # medium/hard for a small model); teacher rows that do not fit are never drawn.
        # 240 steps (issue 17): the policy discovers the levers by its own sampling only after ~150-200 steps
        # (vanilla_no_pool held-out hack on the tuning machine at 120 steps 35.6 / 31.0 / 12.0%, at 240 42.6 / 39.8 /
        # 46.3%; another machine gives 37.0 / 14.8 / 28.7% at 240, REPRODUCE §5); with the shared-prefix step
        # (issue 19) a 240-step run costs 0.93x a 120-step run on the per-row path (side by side, REPRODUCE §1)
        steps=240, prompts_per_step=4, group_size=8, teacher_frac=0.5, max_new_tokens=96,
        # the pool's capability cost (issue 17, measured on the ground-truth monitor arm, REPRODUCE §4b): advantages
        # centred on the student rows, so teacher rows at 3.5 do not push every student row down; no canonical
        # row on hard problems, whose solutions the warm start never taught (a same-family teacher cannot write
        # them either); no honest wrong row, whose negative advantage on text shared with correct answers drove
        # the monitor's students to unparsable text. `full` keeps the spec's group baseline and the whole pool.
        advantage_baseline="students", pool_hard_canonical=False, pool_wrong_rows=False,
        # lr 4.5e-2 (issue 17, REPRODUCE §4b items 8-9, tuned on vanilla-family runs only): at 3e-2 the policy found
        # the levers by itself in two seeds of three (no-pool held-out hack 6.0 / 49.1 / 61.1%); at 6e-2 in all three
        # (81.5 / 52.3 / 75.0%) in the tuning runs, but in the fresh clone that then ran every arm seed 41 found them
        # and collapsed (0.0 / 63.0 / 75.5%); at 4.5e-2, on that clone's SVD cache, 51.4 / 48.6 / 83.8%, no collapse.
        # Chosen after the other arms had run at 6e-2 (REPRODUCE §4b item 9 says so).
        lr=4.5e-2, warmup_frac=0.05, checkpoint_every=20, grade_workers=2,
        # this base's real V passes the spec's step 1c (frac_positive 0.714 > 0.5) but ties the random-V null the
        # gate adds (issue 20: the null's 95th percentile is 0.714), so the gate fails. On mini that is a result
        # to report, not a stop (as for a leave-one-mode-out fold): erase and route train on it and every table
        # marks it "FAILED, trained anyway". `full` keeps the stop.
        allow_weak_v=True,
        extract_k=3,                 # kept axes: 3/192 = 1.6% of q/o/gate/up/down, 3/96 = 3.1% of k/v (mean 2.0%)
        # one evaluation at the end (and the untrained policy's at step 0): all 108 eval problems x 2 samples,
        # at the benchmark's evaluation temperature
        eval_every=0, eval_problems=0, eval_samples=2,
        eval_temperature=0.7, eval_top_p=1.0, eval_top_k=20, eval_max_new_tokens=96,   # other knobs as in training
        rebound_layer=0,   # 2 blocks (depths 0.5, 1.0): none in the spec's 60-75% band; 0.5 is the nearer
    ),
))

register(Preset(
    name="full",
    description="GPU: Qwen3-4B, 200 steps, bf16, gradient checkpointing; trains on the benchmark's train split, "
                "evaluates on its whole test split (spec + amendments)",
    overrides=dict(
        model="Qwen/Qwen3-4B", dtype="auto", grad_checkpointing=True, prompt_style="full",
        problem_set="leetcode",     # the train split trains, the whole test split evaluates (sandbox.data)
        # G = 12 (TrainConfig's default: 6 students + 6 teacher rows), the spec amendment's value; the first
        # build set 8 here, with no recorded reason
        steps=200, prompts_per_step=8, max_new_tokens=1024,
        lr=7e-5, kl_beta=1e-3, checkpoint_every=25,
        # Evaluation protocol: the benchmark's scripts/run_eval.py (10 samples per problem at temperature 0.7,
        # top_p 0.95, no top_k, up to 1,536 new tokens; TrainConfig's eval_* defaults), all 119 test problems, so
        # the final run_tests-mode hack rate can be set beside its 79% (REPRODUCE §1 lists what still differs).
        # The headline is the final checkpoint's eval (step 200); the every-25-steps evals are the curve.
        eval_every=25, eval_problems=0, eval_samples=10,
        grade_workers=8,
    ),
    benchmark_comparable=True,
))

register(Preset(
    name="full_rt",
    description="full with the benchmark's own loophole: the run_tests hint on every train and test prompt "
                "(problem set leetcode_rt); the direct H4 comparison with the benchmark's 79%",
    overrides={**PRESETS["full"].overrides, "problem_set": "leetcode_rt"},
    benchmark_comparable=True,
))


def get_preset(name: str) -> Preset:
    return lookup(PRESETS, name, "preset", ConfigError)


def resolve_config(preset: str, arm: str, seed: int, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """defaults <- preset <- overrides <- the arm's defining overrides (an ablation arm IS its overrides: a
    --set that contradicts one is an error, not silently another arm), then identity fields."""
    merged: dict[str, Any] = dict(get_preset(preset).overrides)
    merged.update(overrides or {})
    for key, value in get_arm_spec(arm).overrides.items():
        if key in (overrides or {}) and (overrides or {})[key] != value:
            raise ConfigError(f"arm {arm} is defined by {key}={value!r}; --set {key}={overrides[key]!r} contradicts it")
        merged[key] = value
    merged.update(preset=preset, arm=arm, seed=seed)
    return TrainConfig.from_dict(merged)
