"""The ONE GRPO training loop. Every arm runs this; arms act only through method.hooks.Arm.

Per step (P prompts from the training partition, G = G_s student + G_t teacher rollouts each; a prompt of a mode
held out of the pool (leave-one-mode-out, config.pool_modes) gets its G_s students and no teacher rows):

    sample prompts            -> rollouts: student generations (merged dense weights) + teacher pool rows
    grade students            -> rewards R [P, G] = record.reward = 0.5*format_ok + 3*(gt_correct or passed), the
                                 benchmark's reward, so the oracle DOES shape R; nothing else reads gt_correct
                                 (no hook, projection statistic or advantage sees it except through R; logged),
                                 except the `monitor` reference arm, a hack detector that reads the label by design
    per group:  R <- arm.reward_hook(R, acts, info) acts: mean residual stream at arm.activation_layer;
                                                    info: the env labels, only for arm.reads_env_labels (monitor)
                skip if max(R) - min(R) < 1e-4
                A = R - mean(R)                     (Dr.GRPO)
                backward student half -> g_s, teacher half -> g_t   (separately; g_s + g_t = step grad)
                (the kl_beta * k3 term on the student half only: k3 is a KL estimate only on policy samples)
    arm.grad_hook(g)          -> projection stats (cos_pre, cos_post, frac_fired, ...)
    clip (log the norm before the hook and the pre-clip norm after it), AdamW step (warmup + cosine lr),
    arm.update_hook(applied update)
    log a row; held-out eval every eval_every steps; checkpoint every checkpoint_every steps

summary.json (headline = end-of-run held-out figures) is written last, atomically, only on completion.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.arms import build_arm
from harness.rundir import (BY_MODE_KEY, CHECKPOINT_DIR, CONFIG_FILE, EVAL_RECORDS_FILE, METRICS_FILE, ROLLOUTS_FILE,
                            read_config, read_summary, write_json_atomic, write_summary)
from harness.train.checkpoint import (latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint,
                                      trainable_named)
from harness.train.rollout import Group, TeacherSampler, generate, student_rollouts
from method import metrics as M
from method.hooks import ArmContext, GradBundle, GroupInfo, UpdateBundle
from policy.config import RunError, TrainConfig, derive_seed
from policy.encode import eos_token_ids
from policy.forward import completion_logprobs, make_batch
from policy.grpo import baseline_rows, dr_grpo_loss, group_advantages, is_flat, k3_kl, loss_normaliser, lr_at
from sandbox.jsonl import JsonlFile
from sandbox.paths import ARTIFACTS_DIR


class NonFiniteError(RuntimeError):
    """A NaN/inf loss or gradient; the run stops and the last checkpoint written stays the last good one."""


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:
        pass


# --------------------------------------------------------------------------- gradient of one step

@dataclass
class StepGrads:
    g_s: dict[str, torch.Tensor]           # by trainable parameter name
    g_t: dict[str, torch.Tensor]
    live: int = 0                          # groups that were not skipped
    loss: float = 0.0
    kl_sum: float = 0.0                    # k3 summed over student tokens of live groups
    kl_tokens: int = 0
    hook_stats: list[dict[str, float]] = field(default_factory=list)
    g_t_parts: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)   # TEACHER_PARTS -> by name


# A diagnostic, measured apart from training (its backward never reaches .grad): the gradient of the teacher rows
# of each label. Equal hack-ward fractions on correct and on hacking rows mean V tracks the teacher distribution,
# not hack-ness. Split by label in a separate pass so that gt_correct never touches the training gradient.
TEACHER_PARTS = ("t_correct", "t_hack")


def _teacher_part(r) -> str | None:
    return "t_correct" if r.gt_correct else ("t_hack" if r.exploited else None)


def teacher_part_grads(model, live: list[tuple[Group, torch.Tensor]], pad_id: int, norm: float,
                       shared_prefix: bool = False) -> dict[str, dict[str, torch.Tensor]]:
    """label -> trainable parameter name -> the gradient of that label's teacher rows (advantages as trained).
    live: (group, its advantages [G] in rollout order). Leaves every .grad as it found it (None)."""
    params = trainable_named(model)
    device = next(iter(params.values())).device
    out: dict[str, dict[str, torch.Tensor]] = {}
    for part in TEACHER_PARTS:
        acc = None
        for g, adv in live:
            idx = [i for i, r in enumerate(g.rollouts) if r.teacher and _teacher_part(r) == part]
            if not idx:
                continue
            b = make_batch(g.prompt_ids, [g.rollouts[i].ids for i in idx], pad_id, device)
            model.train()
            logp, _ = completion_logprobs(model, b, shared_prefix=shared_prefix)
            dr_grpo_loss(logp, None, adv[idx], b.completion_mask, 0.0, norm).backward()
            acc = acc or {n: torch.zeros_like(p) for n, p in params.items()}
            for name, p in params.items():
                if p.grad is not None:
                    acc[name] += p.grad
                    p.grad = None
        if acc is not None:
            out[part] = acc
    model.eval()
    return out


def policy_gradient(model, groups: list[Group], arm, config: TrainConfig, pad_id: int, norm: float,
                    step: int, measure_teacher_parts: bool = False) -> StepGrads:
    """Backward every live group's student and teacher halves separately and accumulate g_s and g_t.

    On return each trainable parameter's .grad is g_s + g_t (None when no group was live).
    Raises NonFiniteError on a NaN/inf loss. measure_teacher_parts: also fill out.g_t_parts (teacher_part_grads).
    """
    from policy.adapter import adapter_disabled

    params = trainable_named(model)
    device = next(iter(params.values())).device
    acc = {h: {n: torch.zeros_like(p) for n, p in params.items()} for h in ("s", "t")}
    out = StepGrads(acc["s"], acc["t"])
    model.zero_grad(set_to_none=True)
    layer = arm.activation_layer
    live: list[tuple[Group, torch.Tensor]] = []
    for gi, g in enumerate(groups):
        halves = [(h, rs) for h, rs in (("s", g.students), ("t", g.teachers)) if rs]
        batches = {h: make_batch(g.prompt_ids, [r.ids for r in rs], pad_id, device) for h, rs in halves}
        rewards = g.rewards()
        fwd: dict[str, torch.Tensor] = {}
        memo: dict = {}         # shared_prefix: the prompt encoded once (with grad) for both halves
        acts = None
        if layer is not None:       # the arm needs activations before its reward hook: policy forwards first
            model.train()
            caps = []
            for h, b in batches.items():
                fwd[h], a = completion_logprobs(model, b, layer, config.shared_prefix, memo)
                caps.append(a)
            acts = torch.cat(caps).detach()
        info = GroupInfo.of(g.rollouts, step, gi) if arm.reads_env_labels else None
        rewards, st = arm.reward_hook(rewards, acts, info)
        out.hook_stats.append(st or {})
        if config.skip_flat_groups and is_flat(rewards):
            continue
        out.live += 1
        teacher = torch.tensor([r.teacher for r in g.rollouts], dtype=torch.bool)
        adv = group_advantages(rewards.float(), baseline_rows(config.advantage_baseline, teacher)).to(device)
        live.append((g, adv))
        offset = 0
        for h, b in batches.items():
            n = b.input_ids.shape[0]
            a_h = adv[offset:offset + n]
            offset += n
            # k3 is an unbiased KL(policy || ref) estimate only on samples from the policy: teacher tokens get no KL
            beta = config.kl_beta if h == "s" else 0.0
            ref = None
            if h == "s":        # the student reference is also what the logged KL is measured against
                model.eval()
                with torch.no_grad(), adapter_disabled(model):
                    ref, _ = completion_logprobs(model, b, shared_prefix=config.shared_prefix)
            if h not in fwd:
                model.train()
                fwd[h], _ = completion_logprobs(model, b, None, config.shared_prefix, memo)
            logp = fwd.pop(h)
            loss = dr_grpo_loss(logp, ref, a_h, b.completion_mask, beta, norm)
            if not torch.isfinite(loss):
                raise NonFiniteError(f"step {step}: non-finite loss ({loss.item()}) on problem {g.problem.id} "
                                     f"({'student' if h == 's' else 'teacher'} half)")
            model.train()       # the mode the graph was built in (checkpointed blocks recompute in backward)
            loss.backward(retain_graph=bool(memo) and h != halves[-1][0])   # the other half's prompt graph
            for name, p in params.items():
                if p.grad is not None:
                    acc[h][name] += p.grad
                    p.grad = None
            out.loss += loss.item()
            if h == "s":
                with torch.no_grad():
                    out.kl_sum += (k3_kl(logp.detach(), ref) * b.completion_mask).sum().item()
                    out.kl_tokens += int(b.completion_mask.sum().item())
    model.eval()
    if measure_teacher_parts and live:
        out.g_t_parts = teacher_part_grads(model, live, pad_id, norm, config.shared_prefix)
    if out.live:
        for name, p in params.items():
            p.grad = acc["s"][name] + acc["t"][name]
    return out


def _delta_s_names(adapters: dict[str, torch.nn.Module], model) -> dict[str, str]:
    """adapter module name -> the model parameter name of its delta_S."""
    by_id = {id(p): n for n, p in model.named_parameters()}
    return {m_name: by_id[id(m.delta_S)] for m_name, m in adapters.items()}


# --------------------------------------------------------------------------- the run

class _Run:
    """Everything one training run holds; `train()` below is the whole public surface."""

    def __init__(self, config: TrainConfig, run_dir: Path, progress: bool, svd_cache: bool = True):
        from policy.adapter import optimizer_param_groups
        from policy.model import Policy
        from policy.model_loading import load_policy
        from sandbox.data import load_problem_set, require_problem_set

        self.config = config
        self.run_dir = run_dir
        self.progress = progress
        require_problem_set(config.problem_set)     # a missing data file stops the run before any model loads
        seed_all(config.seed)
        model, tok = load_policy(config, verbose=progress)
        self.device = next(model.parameters()).device
        self.arm = build_arm(config)
        self.policy = Policy.wrap(model, tok, config, cache_dir=ARTIFACTS_DIR / "svd", route=self.arm.uses_route,
                                  write_cache=svd_cache)
        self.arm.setup(ArmContext(config=config, policy=self.policy, artifacts_dir=ARTIFACTS_DIR))
        self.policy.model.zero_grad(set_to_none=True)
        self.params = trainable_named(self.policy.model)
        if not self.params:
            raise RuntimeError("no trainable parameters after wrap_model")
        self.optimizer = torch.optim.AdamW(
            optimizer_param_groups(list(self.params.values()), self.policy.adapters, config.lr, config.route_hack_lr),
            lr=config.lr, betas=(config.beta1, config.beta2), weight_decay=config.weight_decay)
        self.delta_names = _delta_s_names(self.policy.adapters, self.policy.model)

        problems = load_problem_set(config.problem_set)
        self.train_problems = problems.train
        from harness.train.evaluate import eval_problems

        self.eval_set = eval_problems(problems.eval, config)
        self.pool = _load_pool(config)     # every mode's rows: the coverage cut below must not see pool_modes
        if self.pool is not None:
            ids = _pool_problem_ids(self.pool)
            if ids is not None:     # only prompts the pool covers (seeds: else most steps miss the cache)
                covered = [p for p in self.train_problems if p.id in ids]
                if not covered:
                    raise RunError("the teacher pool covers none of the training problems")
                self.train_problems = covered
            if config.pool_modes:   # leave-one-mode-out: a held mode's problems still train, on students only
                self.pool = self.pool.restrict(config.pool_modes)
        if not self.train_problems:
            raise RunError("no training problems")
        self.pad_id = self.policy.tokenizer.pad_token_id
        self.eos = eos_token_ids(self.policy.model, self.policy.tokenizer)
        self.norm = loss_normaliser(config.prompts_per_step, config.group_size, config.max_new_tokens)
        # teacher rows that fit max_new_tokens, tokenised once (never a cut row with the full text's reward)
        taught = [p for p in self.train_problems if self.taught(p)]
        self.teachers = (TeacherSampler(self.pool, taught, self.policy.tokenizer, self.eos[0], config.max_new_tokens)
                         if self.pool is not None else None)
        fit = self.teachers.stats() if self.teachers is not None else {}
        if fit.get("teacher_problems_no_fit") and progress:
            print(f"[loop] {fit['teacher_problems_no_fit']} training problem(s) have no teacher row within "
                  f"max_new_tokens={config.max_new_tokens}: their groups get no teacher rollouts")
        self.hashes = {"model": self.policy.base_hash, "data": problems.data_hash,
                       "pool": getattr(self.pool, "sha256", None), "v": None}
        self.hashes.update(self.arm.artifact_hashes() or {})
        info = self.policy.load_info
        self.resolved = {
            "device": str(self.device), "dtype": getattr(info, "dtype", None),
            "attn_impl": getattr(info, "attn_impl", None), "attn_why": getattr(info, "attn_why", None),
            "model_path": getattr(info, "path", None), "n_params": getattr(info, "n_params", None),
            "n_trainable": sum(p.numel() for p in self.params.values()), "n_adapters": len(self.policy.adapters),
            "n_train_problems": len(self.train_problems), "n_eval_problems": len(self.eval_set),
            "student_per_group": config.student_per_group, "teacher_per_group": config.teacher_per_group,
            **fit,
            **(self.arm.resolved() or {}),
            "torch": torch.__version__,
        }

    def taught(self, problem) -> bool:
        """Whether `problem`'s groups get teacher rows: False only for a mode held out of the pool (lomo)."""
        return not self.config.pool_modes or problem.mode in self.config.pool_modes

    def mode_counts(self) -> dict[str, dict[str, int]]:
        """mode -> training problems, and zeroed counters of the student rollouts and teacher rows trained on."""
        from sandbox.loopholes import MODES

        out = {m: {"train_problems": 0, "student_rollouts": 0, "teacher_rows": 0} for m in MODES}
        for p in self.train_problems:
            out[p.mode]["train_problems"] += 1
        return out

    # ----------------------------------------------------------------- one step

    def step(self, step: int, grader) -> dict[str, Any]:
        """Optimizer step number `step` (0-based); returns the metrics row (step = step + 1)."""
        t_start = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        seed_all(derive_seed(self.config.seed, step, "step"))
        problems, prompts = self._sample_prompts(step)
        gen, t_gen = _timed(self._generate, step, prompts)
        (jobs, texts, records), t_grade = _timed(self._grade, problems, gen, grader)
        groups, short = self._groups(step, problems, prompts, texts, records)
        sg, t_fb = _timed(self._backward, step, groups)
        row: dict[str, Any] = {"step": step + 1, "lr": self._set_lr(step), "grad_norm_raw": None}
        (gnorm, t_hook) = self._update(step, sg, row) if sg.live else (None, 0.0)   # None: nothing trained
        row.update(self._rollout_stats(groups, short), live_groups=sg.live / len(groups), loss=sg.loss,
                   kl=(sg.kl_sum / sg.kl_tokens) if sg.kl_tokens else None,
                   grad_norm=gnorm, t_gen=t_gen, t_grade=t_grade, t_fwd_bwd=t_fb, t_hook=t_hook)
        for key, val in _mean_stats(sg.hook_stats).items():
            row.setdefault(key, val)
        row["_t_start"] = t_start
        row["_by_mode"] = [(g.problem.mode, len(g.students), len(g.teachers)) for g in groups]
        # what the students wrote and how it graded: ROLLOUTS_FILE (`harness grade --in` reads it as is)
        row["_rollouts"] = [{"step": step + 1, "id": p.id, "completion": text, **rec.to_dict()}
                            for (p, text, _), rec in zip(jobs, records)]
        return row

    # the step's phases, in order

    def _sample_prompts(self, step: int) -> tuple[list, list[list[int]]]:
        """P training problems for this step (a seeded draw) and their encoded prompts."""
        P = self.config.prompts_per_step
        rng = random.Random(derive_seed(self.config.seed, step, "prompts"))
        problems = (rng.sample(self.train_problems, P) if len(self.train_problems) >= P
                    else rng.choices(self.train_problems, k=P))
        return problems, [self.policy.encode(p) for p in problems]

    def _generate(self, step: int, prompts: list[list[int]]) -> list[list[list[int]]]:
        """G_s student completions per prompt, sampled on merged dense weights."""
        torch.manual_seed(derive_seed(self.config.seed, step, "generate"))
        with self.policy.merged():
            return generate(self.policy.model, self.policy.tokenizer, prompts, self.config.student_per_group,
                            self.config)

    def _grade(self, problems, gen, grader) -> tuple[list, list[tuple[str, list[int]]], list]:
        """Decode and grade every student completion -> (grader jobs, (text, ids) per completion, GradeRecords)."""
        jobs, texts = [], []
        for p, samples in zip(problems, gen):
            for ids in samples:
                text = self.policy.tokenizer.decode(ids, skip_special_tokens=True)
                jobs.append((p, text, None))
                texts.append((text, ids))
        return jobs, texts, (grader.grade_many(jobs) if jobs else [])

    def _groups(self, step: int, problems, prompts, texts, records) -> tuple[list[Group], int]:
        """One group per prompt: its graded students, then G_t teacher rows (a seeded draw) unless its mode is
        held out of the pool -> (groups, how many groups drew fewer fitting teacher rows than G_t)."""
        c = self.config
        trng = random.Random(derive_seed(c.seed, step, "teacher"))
        groups, k, short = [], 0, 0
        for p, pr in zip(problems, prompts):
            n = c.student_per_group
            g = Group(p, pr, student_rollouts(texts[k:k + n], records[k:k + n], set(self.eos), c.max_new_tokens))
            k += n
            if self.teachers is not None and c.teacher_per_group and self.taught(p):
                g.rollouts += self.teachers(p, c.teacher_per_group, trng)
                short += self.teachers.short(p, c.teacher_per_group)
            groups.append(g)
        return groups, short

    def _backward(self, step: int, groups: list[Group]) -> "StepGrads":
        """g_s and g_t of every live group (policy_gradient); the teacher parts on teacher_split_every steps."""
        every = self.config.teacher_split_every
        return policy_gradient(self.policy.model, groups, self.arm, self.config, self.pad_id, self.norm, step + 1,
                               measure_teacher_parts=self.arm.wants_teacher_parts
                               and every > 0 and (step + 1) % every == 0)

    def _set_lr(self, step: int) -> float:
        """Warmup + cosine lr for this step, set on every parameter group (route_hack_lr's group keeps its ratio)."""
        lr = lr_at(step, self.config.steps, self.config.lr, self.config.warmup_frac)
        for pg in self.optimizer.param_groups:
            pg["lr"] = lr * pg.get("lr_scale", 1.0)
        return lr

    def _update(self, step: int, sg: "StepGrads", row: dict[str, Any]) -> tuple[float, float]:
        """The arm's grad hook, clip, AdamW step, the arm's update hook (their stats into `row`) -> (pre-clip
        grad norm, seconds). Raises NonFiniteError on a non-finite gradient or parameter."""
        t0 = time.perf_counter()
        # norm of g_s + g_t before the arm's hook: with grad_norm (after it) shows what the projection removed
        row["grad_norm_raw"] = torch.linalg.vector_norm(
            torch.stack([p.grad.detach().norm() for p in self.params.values() if p.grad is not None])).item()
        bundle = GradBundle(modules=self.policy.adapters,
                            g_s={m: sg.g_s[pn] for m, pn in self.delta_names.items()},
                            g_t={m: sg.g_t[pn] for m, pn in self.delta_names.items()}, step=step + 1,
                            g_t_parts={k: {m: v[pn] for m, pn in self.delta_names.items()}
                                       for k, v in sg.g_t_parts.items()})
        row.update(self.arm.grad_hook(bundle) or {})
        gnorm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.config.grad_clip).item()
        if not torch.isfinite(torch.tensor(gnorm)):
            raise NonFiniteError(f"step {step + 1}: non-finite gradient (pre-clip norm {gnorm}); "
                                 f"the last good checkpoint is {self._last_ckpt()}")
        before = {m: mod.delta_S.detach().clone() for m, mod in self.policy.adapters.items()}
        self.optimizer.step()
        delta = {m: mod.delta_S.detach() - before[m] for m, mod in self.policy.adapters.items()}
        row.update(self.arm.update_hook(UpdateBundle(modules=self.policy.adapters, delta=delta, step=step + 1)) or {})
        self.optimizer.zero_grad(set_to_none=True)
        if not all(torch.isfinite(p).all() for p in self.params.values()):
            raise NonFiniteError(f"step {step + 1}: non-finite parameters after the update; "
                                 f"the last good checkpoint is {self._last_ckpt()}")
        return gnorm, time.perf_counter() - t0

    def _rollout_stats(self, groups: list[Group], short: int) -> dict[str, Any]:
        """Rewards, hack / pass / attempt rates, lengths and truncation of the step's student and teacher rows."""
        students = [r for g in groups for r in g.students]
        teachers = [r for g in groups for r in g.teachers]
        rewards = torch.tensor([r.reward for g in groups for r in g.rollouts], dtype=torch.float32)
        taught = self.teachers is not None and self.config.teacher_per_group
        return dict(
            reward_mean=rewards.mean().item(),
            reward_std=rewards.std(unbiased=False).item(),
            hack_rate_s=_frac(students, "exploited"), hack_rate_t=_frac(teachers, "exploited"),
            gt_pass_s=_frac(students, "gt_correct"), gt_pass_t=_frac(teachers, "gt_correct"),
            attempt_rate_s=_frac(students, "attempted"), attempt_rate_t=_frac(teachers, "attempted"),
            len_s=(sum(len(r.ids) for r in students) / len(students)) if students else None,
            trunc_s=_frac(students, "truncated"), trunc_t=_frac(teachers, "truncated"),
            teacher_short=(short / len(groups)) if taught else None,
        )

    def _last_ckpt(self) -> str:
        cks = list_checkpoints(self.run_dir / CHECKPOINT_DIR)
        return str(cks[-1].path) if cks else "none (no checkpoint written yet)"

    def evaluate(self, step: int, grader) -> dict[str, Any]:
        from harness.train.evaluate import evaluate

        t0 = time.perf_counter()
        out = evaluate(self.policy.model, self.policy.tokenizer, self.eval_set, grader, self.config,
                       self.policy.encoder, seed=derive_seed(self.config.seed, step, "eval"),
                       ablate_hack=self.arm.uses_route)
        out["t_eval"] = time.perf_counter() - t0
        self.eval_log.append([{"step": step, **r} for r in out.pop("_records")])
        return out


def open_eval_log(path: Path, keep_through: int) -> JsonlFile:
    """eval_records.jsonl for a (re)started run: rows of evaluations after `keep_through` (the checkpoint step;
    -1 when not even the step-0 evaluation was checkpointed) are dropped, as they are recomputed identically."""
    log = JsonlFile(path)
    log.keep(lambda r: int(r.get("step", 0)) <= keep_through)
    return log


def _timed(fn, *args):
    """(fn(*args), seconds it took)."""
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def _frac(rollouts, attr: str) -> float | None:
    """Fraction of rollouts with `attr` true; None when there are none or any value is unknown (None)."""
    vals = [getattr(r, attr) for r in rollouts]
    if not vals or any(v is None for v in vals):
        return None
    return sum(bool(v) for v in vals) / len(vals)


def _mean_stats(stats: list[dict[str, Any]]) -> dict[str, float]:
    keys = {k for s in stats for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out = {}
    for k in sorted(keys):
        vals = [float(s[k]) for s in stats if k in s]
        out[k] = sum(vals) / len(vals)
    return out


def _load_pool(config: TrainConfig):
    if config.teacher_per_group == 0:
        return None
    from sandbox.pool import load_pool

    path = config.teacher_pool
    if path == "builtin":
        from sandbox.pool import ensure_pool

        path = ensure_pool(config)
    return load_pool(path)     # all modes: _Run restricts it to pool_modes after the coverage cut


def _pool_problem_ids(pool) -> set[int] | None:
    for attr in ("problem_ids", "ids"):
        v = getattr(pool, attr, None)
        if v is not None:
            return set(v() if callable(v) else v)
    return None


def _strip_private(row: dict[str, Any]) -> dict[str, Any]:
    """Drop loop-internal keys; NaN/inf statistics (e.g. a mean over no modules) become None (strict JSON)."""
    out = {}
    for k, v in row.items():
        if k.startswith("_"):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def train(config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    """Train one arm x seed into run_dir; returns the summary (also written to run_dir/summary.json, last).

    resume=True continues from the newest complete checkpoint (metrics rows after it are recomputed);
    a finished run is returned as is. resume=False refuses a directory that already holds progress.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_root = run_dir / CHECKPOINT_DIR
    metrics_path = run_dir / METRICS_FILE
    stored = read_config(run_dir)
    if stored is not None and stored.config_hash() != config.config_hash():
        raise RunError(f"{run_dir} holds a run with a different config; use another directory")
    if resume:
        done = read_summary(run_dir)
        if done and done.get("complete") is True:
            return done
    elif list_checkpoints(ckpt_root) or (metrics_path.exists() and metrics_path.stat().st_size > 0):
        raise RunError(f"{run_dir} already holds a partial run; pass resume=True or use another directory")

    old_threads = torch.get_num_threads()
    try:
        if config.cpu_threads > 0 and not torch.cuda.is_available():
            torch.set_num_threads(config.cpu_threads)
        from sandbox.backends import make_executor

        # the grader starts first: a refusal to grade without isolation comes before minutes of set-up
        with make_executor(kind=config.sandbox, workers=config.grade_workers) as ex:
            return _train(config, run_dir, resume, progress, ex, ex.start())
    finally:
        torch.set_num_threads(old_threads)


def _train(config: TrainConfig, run_dir: Path, resume: bool, progress: bool, ex, grader_info: dict[str, str]) -> dict:
    from policy.determinism import environment

    ckpt_root = run_dir / CHECKPOINT_DIR
    metrics_path = run_dir / METRICS_FILE
    wall0 = time.perf_counter()
    run = _Run(config, run_dir, progress)
    # environment and grader: what decided this session's numbers and what isolated graded programs
    write_json_atomic(run_dir / CONFIG_FILE, {**config.to_dict(), "config_hash": config.config_hash(),
                                               "hashes": run.hashes, "resolved": run.resolved,
                                               "environment": environment(), "grader": grader_info})
    log = M.MetricsLog(metrics_path)
    rows: list[dict[str, Any]] = []
    base_eval: dict[str, Any] | None = None   # held-out eval of the untrained policy (delta = 0)
    counts: dict[str, dict[str, int]] | None = run.mode_counts()   # what was drawn, per loophole mode
    start = 0
    ck = latest_checkpoint(ckpt_root) if resume else None
    if ck is not None:
        if ck.state.get("config_hash") != config.config_hash():
            raise RunError(f"checkpoint {ck.path} was written by a different config")
        state = load_checkpoint(ck, run.policy.model, run.optimizer, run.arm)
        rows = list(state["metrics"])
        base_eval = state.get("base_eval")
        counts = state.get("mode_counts")   # None: a checkpoint written before the counts were kept (unknown)
        start = ck.step
    log.rewrite(rows)       # drop rows logged after the checkpoint: they are recomputed identically
    rollouts = JsonlFile(run_dir / ROLLOUTS_FILE)
    rollouts.keep(lambda r: r["step"] <= start)
    run.eval_log = open_eval_log(run_dir / EVAL_RECORDS_FILE, keep_through=start if base_eval is not None else -1)
    setup_s = time.perf_counter() - wall0

    from sandbox.grader import Grader

    c = config
    title = f"{c.preset}/{c.arm}/seed{c.seed}"
    with M.LiveDisplay(c.steps, title, enabled=progress) as display:
        grader = Grader(ex)
        if base_eval is None and start == 0:
            # Step-0 reference: every arm of one seed evaluates the same untrained policy with the same
            # seed, so these numbers agree across arms and show what training changed.
            base_eval = _strip_private(run.evaluate(0, grader))
        display.start_at(start, rows)
        if start:
            display.note(f"[{title}] resumed from checkpoint step {start}")
        for step in range(start, c.steps):
            row = run.step(step, grader)
            s = step + 1
            if (c.eval_every > 0 and s % c.eval_every == 0) or s == c.steps:
                row.update(run.evaluate(s, grader))
            row["t_step"] = time.perf_counter() - row.pop("_t_start")
            for mode, n_s, n_t in row.pop("_by_mode"):
                if counts is not None:
                    counts[mode]["student_rollouts"] += n_s
                    counts[mode]["teacher_rows"] += n_t
            rollouts.append(row.pop("_rollouts"))
            row["peak_mem_mb"] = M.peak_memory_mb(run.device)
            row = _strip_private(row)
            log.append(row)
            rows.append(row)
            display.update(row)
            if (c.checkpoint_every > 0 and s % c.checkpoint_every == 0) or s == c.steps:
                save_checkpoint(ckpt_root, s, run.policy.model, run.optimizer,
                                {"metrics": rows, "config_hash": c.config_hash(), "base_eval": base_eval,
                                 "mode_counts": counts},
                                arm=run.arm)

    final = rows[-1]
    summary = {
        "arm": c.arm, "seed": c.seed, "preset": c.preset, "complete": True, "steps": c.steps,
        "hack_rate": final.get("eval_hack_rate"), "pass_rate": final.get("eval_pass_rate"),
        "attempt_rate": final.get("eval_attempt_rate"),   # held-out; with hack_rate: P(exploit | attempt)
        # the same held-out eval before any update (step 0): what the run started from
        "base_hack_rate": (base_eval or {}).get("eval_hack_rate"),
        "base_pass_rate": (base_eval or {}).get("eval_pass_rate"),
        "base_attempt_rate": (base_eval or {}).get("eval_attempt_rate"),
        **(means := {k: M.tail_mean(rows, metric) for k, metric in M.SUMMARY_MEANS.items()}),
        # mean_cos as a multiple of its chance level (1 = no more hack-ward than an isotropic gradient)
        "cos_over_null": (means["mean_cos"] / means["null_cos"]
                          if means["mean_cos"] is not None and means["null_cos"] else None),
        # compute time over all sessions of this run (resumes included) + this session's setup
        "wall_s": sum(r.get("t_step") or 0.0 for r in rows) + setup_s,
        "hashes": run.hashes,
        # per loophole mode: training problems, and the student rollouts / teacher rows of all steps' groups
        # (lomo: the held mode trains on students only); None when resumed from a checkpoint that lacks them
        BY_MODE_KEY: counts if counts is not None else {
            m: dict(v, student_rollouts=None, teacher_rows=None) for m, v in run.mode_counts().items()},
        **(run.arm.summary() or {}),   # e.g. v_displacement (issue 20)
    }
    write_summary(run_dir, summary)
    return read_summary(run_dir)
