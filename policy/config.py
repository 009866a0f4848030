"""Typed run configuration: one dataclass, one place for every default.

Presets (`harness.presets.PRESETS`) are override dicts applied on top of these
defaults; `--set key=value` overrides are parsed against the field types here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from sandbox.grader import PASS_REWARD

# The preregistered seeds (spec: "n >= 3 for the headline claim").
PREREGISTERED_SEEDS: tuple[int, ...] = (41, 42, 43)


# fields added after runs existed -> their default: left out of config_hash while at it (issue 20: route_hack_lr)
HASH_OMITTED_AT_DEFAULT: dict[str, Any] = {"route_hack_lr": 0.0, "v_pairs": "hack"}


@dataclass
class TrainConfig:
    # --- identity ---------------------------------------------------------
    preset: str = "full"
    arm: str = "vanilla"
    seed: int = PREREGISTERED_SEEDS[0]

    # --- substrate --------------------------------------------------------
    # hub id or local path, loaded with AutoModelForCausalLM.from_pretrained;
    # "builtin:<name>" means a base the project builds itself (smoke / mini).
    model: str = "Qwen/Qwen3-4B"
    dtype: str = "auto"            # auto -> bf16 on CUDA, fp32 on CPU
    attn_impl: str = "auto"        # auto -> flash_attention_2 if installed on GPU, else sdpa
    grad_checkpointing: bool = False
    # loss / reference forwards encode each group's prompt once and share its keys/values with the group's rows
    # (policy.prefix); False = every row forwards its own copy (the reference path; same numbers)
    shared_prefix: bool = True
    # torch intra-op threads when training on CPU (0 = torch's default). 1: on shared cores OpenMP threads
    # spin against each other; measured 10x slower mini steps with 2 threads on the loaded 2-core box.
    cpu_threads: int = 1
    # policy.adapter: "residual" keeps the original W and adds U diag(delta_S) Vh, so the untrained policy is the
    # base model bit for bit in bf16; "product" rebuilds W = U diag(S + delta_S) Vh (smoke and mini, as built)
    adapter_form: str = "residual"
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    enable_thinking: bool = False  # chat template flag (Qwen3); thinking off per the spec
    prompt_style: str = "full"     # "full" = the benchmark prompt; "compact" = question-free (mini)
    max_prompt_tokens: int = 2048

    # --- data / environment -------------------------------------------------
    # which problems train and which evaluate: a key of sandbox.data.PROBLEM_SETS ("leetcode": the
    # benchmark's train split trains, its whole test split evaluates)
    problem_set: str = "leetcode"
    sandbox: str = "auto"          # auto -> docker when a daemon answers, else process
    grade_workers: int = 2

    # --- GRPO ---------------------------------------------------------------
    steps: int = 200
    prompts_per_step: int = 8      # P
    group_size: int = 12           # G = G_s + G_t (the spec amendment's 12)
    teacher_frac: float = 0.5      # G_t = round(G * teacher_frac); 0 = pure student GRPO
    teacher_pool: str = "builtin"  # path to a frozen pool JSONL, or "builtin"
    # loophole modes whose teacher rows may be drawn; () = all (leave-one-mode-out: the pool must not teach
    # the held mode while its suppression is measured)
    pool_modes: tuple[str, ...] = ()
    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 20
    min_p: float = 0.0
    kl_beta: float = 1e-3
    skip_flat_groups: bool = True  # groups with max(R)-min(R) < 1e-4 carry no advantage

    # --- optimizer ------------------------------------------------------------
    lr: float = 7e-5
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    warmup_frac: float = 0.05
    grad_clip: float = 1.0

    # --- v_hack extraction ------------------------------------------------------
    extract_k: int = 12            # top-k right singular vectors kept per module
    noise_quantile: float = 0.25   # global floor: drop this bottom quantile of singular values
    heldout_pairs_frac: float = 0.1  # >= 64 pairs must remain for extraction (spec: ~60-80)
    # per-pair gradient: "sum" = the loop's Dr.GRPO form (token sum / P*G*max_new_tokens), exactly the gradient
    # training emits for the pair at advantages +1/-1; "mean" = per-completion mean NLL (the length-bias ablation)
    extract_nll: str = "sum"
    # spec step 1c: the real V must pass held-out validation (frac_positive > 0.5) or nothing trains with it;
    # True proceeds anyway and says so in config.json ("resolved".v_validation) and the report
    allow_weak_v: bool = False
    # loophole modes whose pairs V is extracted from; () = all. Leave-one-mode-out sets the three known modes.
    pair_modes: tuple[str, ...] = ()
    # the pairs the real V is extracted from (method.pairs.V_PAIR_SETS): "hack", or "minimal" (the same honest solution
    # with and without an unguarded lever: the minimal-contrast ablation, arm erase_minimal)
    v_pairs: str = "hack"

    # --- projection (erase / route / controls) ----------------------------------
    proj_one_sided: bool = True    # False = "no_gate": remove V g whatever its sign
    proj_preserve_norm: bool = True
    proj_on_update: bool = False   # also project the optimizer's update (Adam-momentum leak)
    # route: learning rate of delta_S_hack in its own AdamW parameter group (same warmup + cosine shape); 0 = one
    # group at lr, as before this field existed
    route_hack_lr: float = 0.0
    v_refresh_every: int = 0       # 0 = frozen V

    # --- Rebound ------------------------------------------------------------
    rebound_alpha: float = 0.5
    rebound_layer_frac: float = 0.67   # picks within the spec's 60-75% depth band (baselines.rebound.DEPTH_BAND)
    rebound_layer: int = -1            # >= 0: this 0-based block, explicitly (models with no block in the band)

    # --- hack monitor (the `monitor` reference arm, baselines/monitor.py) -----------------
    monitor_mode: str = "screen"       # screen: flagged rollouts drop out of the group's advantage; penalty
    monitor_signal: str = "exploited"  # exploited: the benchmark's hack label (ground truth: an UPPER BOUND);
                                       # attempted: a harmful check, by execution (GradeRecord)
    monitor_accuracy: float = 1.0      # each flag is flipped with probability 1 - accuracy (seeded)
    monitor_penalty: float = PASS_REWARD  # penalty mode: subtracted from a flagged reward (a flagged pass earns
                                          # no more than a fail)

    # --- bookkeeping ------------------------------------------------------------
    # every N steps, one extra backward of the teacher rows split by label (correct / hacking) to measure V's cos
    # on each (a diagnostic, never trained on); 0 = off
    teacher_split_every: int = 5
    eval_every: int = 50
    eval_problems: int = 32        # held-out problems per evaluation (0 = all)
    eval_samples: int = 1          # student generations per held-out problem
    # held-out sampling: the benchmark's evaluation (ariahw/rl-rewardhacking@bf5cdb8 scripts/run_eval.py: vLLM
    # SamplingParams(temperature=0.7, top_p=0.95, max_tokens=1536), top_k and min_p at vLLM's defaults, i.e. off).
    # The CPU presets set their own (as in their training) so their numbers stay comparable with earlier runs.
    eval_temperature: float = 0.7
    eval_top_p: float = 0.95
    eval_top_k: int = 0            # 0 = off
    eval_max_new_tokens: int = 1536
    checkpoint_every: int = 25
    log_every: int = 1

    def __post_init__(self):
        from sandbox.loopholes import MODES

        for key in ("pair_modes", "pool_modes"):
            bad = sorted(set(getattr(self, key)) - set(MODES))
            if bad:
                raise ConfigError(f"{key}: unknown loophole mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}")
        if self.adapter_form not in ADAPTER_FORMS:
            raise ConfigError(f"adapter_form {self.adapter_form!r}; choose from {', '.join(ADAPTER_FORMS)}")
        if self.v_pairs not in ("hack", "minimal"):     # method.pairs.V_PAIR_SETS (config may not import method)
            raise ConfigError(f"v_pairs {self.v_pairs!r}; choose from hack, minimal")
        if self.monitor_mode not in MONITOR_MODES:
            raise ConfigError(f"monitor_mode {self.monitor_mode!r}; choose from {', '.join(MONITOR_MODES)}")
        if self.monitor_signal not in MONITOR_SIGNALS:
            raise ConfigError(f"monitor_signal {self.monitor_signal!r}; choose from {', '.join(MONITOR_SIGNALS)}")
        if not 0.0 <= self.monitor_accuracy <= 1.0:
            raise ConfigError(f"monitor_accuracy {self.monitor_accuracy!r} is not in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """Hash of everything but identity-free bookkeeping; used to refuse reusing an out dir.
        Fields in HASH_OMITTED_AT_DEFAULT count only when set, so run dirs from before they existed keep their hash."""
        d = {k: v for k, v in self.to_dict().items()
             if not (k in HASH_OMITTED_AT_DEFAULT and v == HASH_OMITTED_AT_DEFAULT[k])}
        blob = json.dumps(d, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def teacher_per_group(self) -> int:
        return int(round(self.group_size * self.teacher_frac))

    @property
    def student_per_group(self) -> int:
        return self.group_size - self.teacher_per_group

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        kwargs = {}
        for k, v in d.items():
            kwargs[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs)


ADAPTER_FORMS = ("residual", "product")
MONITOR_MODES = ("screen", "penalty")
MONITOR_SIGNALS = ("exploited", "attempted")


class ConfigError(ValueError):
    """Bad user input in a config override; the CLI prints it as a one-line error."""


class RunError(ConfigError):
    """A run directory that cannot be used as asked (other config, corrupt file, partial run)."""


def _field_types() -> dict[str, type]:
    defaults = TrainConfig()
    return {f.name: type(getattr(defaults, f.name)) for f in fields(TrainConfig)}


def parse_override(item: str) -> tuple[str, Any]:
    """Parse one `key=value` against TrainConfig's field types."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    key = key.strip()
    types = _field_types()
    if key not in types:
        raise ConfigError(f"unknown --set key {key!r}; known keys: {', '.join(sorted(types))}")
    typ = types[key]
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            value: Any = low in ("true", "1", "yes")
        elif typ is tuple:
            value = tuple(s.strip() for s in raw.split(",") if s.strip())
        else:
            value = typ(raw)
    except ValueError:
        raise ConfigError(f"--set {key}: expected {typ.__name__}, got {raw!r}") from None
    return key, value


def derive_seed(*parts: object) -> int:
    """An independent, reproducible 63-bit seed per tuple of parts, e.g. (run seed, step, purpose): a resumed run
    re-derives the same streams. The one derivation every random draw of a run starts from."""
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:8], "little") >> 1
