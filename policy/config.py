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

from policy.grpo import ADVANTAGE_BASELINES
from sandbox.grader import PASS_REWARD

# The preregistered seeds (spec: "n >= 3 for the headline claim").
PREREGISTERED_SEEDS: tuple[int, ...] = (41, 42, 43)


# fields added after runs existed -> their default: left out of config_hash while at it (issue 20: route_hack_lr)
HASH_OMITTED_AT_DEFAULT: dict[str, Any] = {"route_hack_lr": 0.0, "v_pairs": "hack", "advantage_baseline": "group",
                                            "pool_hard_canonical": True, "pool_wrong_rows": True}


def opt(default: Any, help: str) -> Any:
    """A TrainConfig field: its default and its description (the field's metadata["help"])."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Every knob of a run, with its default and what it means (`harness run --help-config` prints them)."""

    # --- identity ---------------------------------------------------------
    preset: str = opt("full", "the preset this run resolved from (harness.presets)")
    arm: str = opt("vanilla", "the arm (harness.arms.ARMS)")
    seed: int = opt(PREREGISTERED_SEEDS[0], "the run's seed; every random stream derives from it (derive_seed)")

    # --- substrate --------------------------------------------------------
    model: str = opt(
        "Qwen/Qwen3-4B",
        "hub id or local path, loaded with AutoModelForCausalLM.from_pretrained; \"builtin:<name>\" means a base the "
        "project builds itself (smoke / mini).")
    dtype: str = opt("auto", "model dtype; auto -> bf16 on CUDA, fp32 on CPU")
    attn_impl: str = opt("auto", "attention kernel; auto -> flash_attention_2 if installed on GPU, else sdpa")
    grad_checkpointing: bool = opt(False, "recompute block activations in backward (memory for time; full preset)")
    shared_prefix: bool = opt(
        True,
        "loss / reference forwards encode each group's prompt once and share its keys/values with the group's rows "
        "(policy.prefix); False = every row forwards its own copy (the reference path; same numbers)")
    cpu_threads: int = opt(
        1,
        "torch intra-op threads when training on CPU (0 = torch's default). 1: on shared cores OpenMP threads spin "
        "against each other; measured 10x slower mini steps with 2 threads on the loaded 2-core box.")
    adapter_form: str = opt(
        "residual",
        "policy.adapter: \"residual\" keeps the original W and adds U diag(delta_S) Vh, so the untrained policy is "
        "the base model bit for bit in bf16; \"product\" rebuilds W = U diag(S + delta_S) Vh (smoke and mini, as "
        "built)")
    target_modules: tuple[str, ...] = opt(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "the linear layers wrapped with an SVD adapter (by their last name component)")
    enable_thinking: bool = opt(False, "chat template flag (Qwen3); thinking off per the spec")
    prompt_style: str = opt("full", "\"full\" = the benchmark prompt; \"compact\" = question-free (mini)")
    max_prompt_tokens: int = opt(2048, "longer prompts keep their end (the assistant header and the question's tail)")

    # --- data / environment -------------------------------------------------
    problem_set: str = opt(
        "leetcode",
        "which problems train and which evaluate: a key of sandbox.data.PROBLEM_SETS (\"leetcode\": the benchmark's "
        "train split trains, its whole test split evaluates)")
    sandbox: str = opt("auto", "grading backend; auto -> docker when a daemon answers, else process")
    grade_workers: int = opt(2, "parallel sandbox workers grading rollouts")

    # --- GRPO ---------------------------------------------------------------
    steps: int = opt(200, "training steps")
    prompts_per_step: int = opt(8, "P: prompts (one group each) per step")
    group_size: int = opt(12, "G = G_s + G_t (the spec amendment's 12)")
    teacher_frac: float = opt(0.5, "G_t = round(G * teacher_frac); 0 = pure student GRPO")
    teacher_pool: str = opt("builtin", "path to a frozen pool JSONL, or \"builtin\"")
    pool_hard_canonical: bool = opt(
        True,
        "the builtin pool holds each training problem's canonical solution; False: not on hard problems (mini: a "
        "teacher of the student's own family does not write the hard solutions its warm start never taught; their "
        "hack and wrong rows stay, so hard problems stay in training)")
    pool_wrong_rows: bool = opt(
        True,
        "the builtin pool holds honest wrong rows (a constant stub, the canonical with its last return broken); "
        "False: none (mini, issue 17: at ratio 1 their negative advantage pushes down the tokens they share with "
        "correct answers, and the ground-truth monitor's students degenerated to unparsable text)")
    pool_modes: tuple[str, ...] = opt(
        (),
        "loophole modes whose teacher rows may be drawn; () = all (leave-one-mode-out: the pool must not teach the "
        "held mode while its suppression is measured)")
    max_new_tokens: int = opt(
        1024,
        "generation budget per student rollout; teacher rows longer than this are never drawn")
    temperature: float = opt(1.0, "student sampling temperature")
    top_p: float = opt(1.0, "student sampling nucleus (1.0 = off)")
    top_k: int = opt(20, "student sampling top-k (0 = off)")
    min_p: float = opt(0.0, "student sampling min-p (0.0 = off)")
    kl_beta: float = opt(1e-3, "weight of the k3 KL(policy || reference) term in the loss")
    skip_flat_groups: bool = opt(True, "groups with max(R)-min(R) < 1e-4 carry no advantage")
    advantage_baseline: str = opt(
        "group",
        "what A = R - baseline centres on (policy.grpo.ADVANTAGE_BASELINES): \"group\" = the mean of all G rows, "
        "teacher rows included (the spec); \"students\" = the mean of the group's student rows, so high-reward "
        "teacher rows do not give every student row a negative advantage (mini, issue 17)")

    # --- optimizer ------------------------------------------------------------
    lr: float = opt(7e-5, "AdamW learning rate of delta_S (warmup, then cosine to 0)")
    beta1: float = opt(0.9, "AdamW beta1")
    beta2: float = opt(0.99, "AdamW beta2")
    weight_decay: float = opt(0.1, "AdamW weight decay")
    warmup_frac: float = opt(0.05, "fraction of the steps spent in linear warmup")
    grad_clip: float = opt(1.0, "global gradient-norm clip, after the arm's gradient hook")

    # --- v_hack extraction ------------------------------------------------------
    extract_k: int = opt(12, "top-k right singular vectors kept per module")
    noise_quantile: float = opt(0.25, "global floor: drop this bottom quantile of singular values")
    heldout_pairs_frac: float = opt(0.1, ">= 64 pairs must remain for extraction (spec: ~60-80)")
    extract_nll: str = opt(
        "sum",
        "per-pair gradient: \"sum\" = the loop's Dr.GRPO form (token sum / P*G*max_new_tokens), exactly the gradient "
        "training emits for the pair at advantages +1/-1; \"mean\" = per-completion mean NLL (the length-bias "
        "ablation)")
    allow_weak_v: bool = opt(
        False,
        "spec step 1c: the real V must pass held-out validation (frac_positive > 0.5) or nothing trains with it; "
        "True proceeds anyway and says so in config.json (\"resolved\".v_validation) and the report")
    pair_modes: tuple[str, ...] = opt(
        (),
        "loophole modes whose pairs V is extracted from; () = all. Leave-one-mode-out sets the three known modes.")
    v_pairs: str = opt(
        "hack",
        "the pairs the real V is extracted from (method.pairs.V_PAIR_SETS): \"hack\", or \"minimal\" (the same "
        "honest solution with and without an unguarded lever: the minimal-contrast ablation, arm erase_minimal)")

    # --- projection (erase / route / controls) ----------------------------------
    proj_one_sided: bool = opt(
        True,
        "remove only the hack-ward part relu(V g); False = \"no_gate\": all of V g whatever its sign")
    proj_preserve_norm: bool = opt(
        True,
        "rescale the projected gradient to the norm it had (False: the spec's arm c, erase_no_norm)")
    proj_on_update: bool = opt(False, "also project the optimizer's update (Adam-momentum leak)")
    route_hack_lr: float = opt(
        0.0,
        "route: learning rate of delta_S_hack in its own AdamW parameter group (same warmup + cosine shape); 0 = one "
        "group at lr, as before this field existed")
    v_refresh_every: int = opt(0, "re-extract V every N steps at the adapter's current state (0 = frozen V)")

    # --- Rebound ------------------------------------------------------------
    rebound_alpha: float = opt(0.5, "Rebound's penalty weight on the concept score")
    rebound_layer_frac: float = opt(0.67, "picks within the spec's 60-75% depth band (baselines.rebound.DEPTH_BAND)")
    rebound_layer: int = opt(-1, ">= 0: this 0-based block, explicitly (models with no block in the band)")

    # --- hack monitor (the `monitor` reference arm, baselines/monitor.py) -----------------
    monitor_mode: str = opt(
        "screen",
        "screen: flagged rollouts drop out of the group's advantage; penalty: a flagged reward loses monitor_penalty")
    monitor_signal: str = opt(
        "exploited",
        "exploited: the benchmark's hack label (ground truth: an UPPER BOUND); attempted: a harmful check, by "
        "execution (GradeRecord)")
    monitor_accuracy: float = opt(1.0, "each flag is flipped with probability 1 - accuracy (seeded)")
    monitor_penalty: float = opt(
        PASS_REWARD,
        "penalty mode: subtracted from a flagged reward (a flagged pass earns no more than a fail)")

    # --- bookkeeping ------------------------------------------------------------
    teacher_split_every: int = opt(
        5,
        "every N steps, one extra backward of the teacher rows split by label (correct / hacking) to measure V's cos "
        "on each (a diagnostic, never trained on); 0 = off")
    eval_every: int = opt(50, "held-out evaluation every N steps and at the last step (0 = the last step only)")
    eval_problems: int = opt(32, "held-out problems per evaluation (0 = all)")
    eval_samples: int = opt(1, "student generations per held-out problem")
    eval_temperature: float = opt(
        0.7,
        "held-out sampling: the benchmark's evaluation (ariahw/rl-rewardhacking@bf5cdb8 scripts/run_eval.py: vLLM "
        "SamplingParams(temperature=0.7, top_p=0.95, max_tokens=1536), top_k and min_p at vLLM's defaults, i.e. "
        "off). The CPU presets set their own (as in their training) so their numbers stay comparable with earlier "
        "runs.")
    eval_top_p: float = opt(0.95, "held-out sampling nucleus")
    eval_top_k: int = opt(0, "held-out sampling top-k (0 = off)")
    eval_max_new_tokens: int = opt(1536, "held-out generation budget")
    checkpoint_every: int = opt(25, "save a resumable checkpoint every N steps")
    log_every: int = opt(1, "not read: the loop writes a metrics row every step (kept so config.json files load)")

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
        if self.advantage_baseline not in ADVANTAGE_BASELINES:
            raise ConfigError(f"advantage_baseline {self.advantage_baseline!r}; "
                              f"choose from {', '.join(ADVANTAGE_BASELINES)}")
        if self.monitor_mode not in MONITOR_MODES:
            raise ConfigError(f"monitor_mode {self.monitor_mode!r}; choose from {', '.join(MONITOR_MODES)}")
        if self.monitor_signal not in MONITOR_SIGNALS:
            raise ConfigError(f"monitor_signal {self.monitor_signal!r}; choose from {', '.join(MONITOR_SIGNALS)}")
        if not 0.0 <= self.monitor_accuracy <= 1.0:
            raise ConfigError(f"monitor_accuracy {self.monitor_accuracy!r} is not in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def config_hash(self) -> str:
        """sha256 (16 hex) of every field, identity included; a run dir holding another hash is not reused.
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


def describe_fields() -> list[tuple[str, str, str, str]]:
    """(name, type, default, description) of every TrainConfig field, in declaration order."""
    return [(f.name, str(f.type), repr(f.default), f.metadata.get("help", "")) for f in fields(TrainConfig)]
