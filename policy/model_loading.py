"""Load the policy (any AutoModelForCausalLM) and estimate the full preset's GPU memory.

`load_policy` is the one code path for every preset: a hub id ("Qwen/Qwen3-4B"), a local
save_pretrained directory, or "builtin:<name>" (a directory policy.substrate builds) all go
through AutoModelForCausalLM.from_pretrained / AutoTokenizer.from_pretrained.
"""
from __future__ import annotations

import importlib.util
import math
import sys
from dataclasses import dataclass
from typing import Any

import torch

from policy.config import TrainConfig
from policy.qwen3_local import QWEN3_4B

BUILTIN_PREFIX = "builtin:"


def resolve_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    if config.dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        dt = getattr(torch, config.dtype)
    except AttributeError:
        dt = None
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"unknown dtype {config.dtype!r} (auto, float32, bfloat16, float16)")
    return dt


def resolve_attn(config: TrainConfig, device: torch.device) -> tuple[str, str]:
    """(attn_implementation, why)."""
    if config.attn_impl != "auto":
        return config.attn_impl, "set in config"
    if device.type != "cuda":
        return "sdpa", "no CUDA device"
    if importlib.util.find_spec("flash_attn") is None:
        return "sdpa", "flash_attn not installed"
    return "flash_attention_2", "CUDA + flash_attn importable"


def resolve_model_path(model: str) -> str:
    if model.startswith(BUILTIN_PREFIX):
        from policy.substrate import ensure_builtin

        return str(ensure_builtin(model[len(BUILTIN_PREFIX):]))
    return model


@dataclass
class LoadInfo:
    path: str
    device: str
    dtype: str
    attn_impl: str
    attn_why: str
    n_params: int

    def line(self) -> str:
        return (f"policy {self.path}: {self.n_params / 1e6:.2f}M params, {self.dtype} on {self.device}, "
                f"attn={self.attn_impl} ({self.attn_why})")


def load_policy(config: TrainConfig, device: torch.device | None = None, verbose: bool = True):
    """-> (model, tokenizer). The model is in eval mode with every parameter still trainable;
    policy.adapter.wrap_model freezes what it does not train. `model.load_info` records the choices."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or resolve_device()
    dtype = resolve_dtype(config, device)
    attn, why = resolve_attn(config, device)
    path = resolve_model_path(config.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:           # hub Qwen3 has one; be safe for other bases
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    model.to(device)
    model.eval()
    if config.grad_checkpointing:
        # non-reentrant checkpointing works with frozen base weights; enable_input_require_grads is the
        # PEFT trick that keeps reentrant checkpointing from short-circuiting when no input needs grad.
        if hasattr(model, "activation_checkpointing_enable"):      # transformers >= 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    info = LoadInfo(path=path, device=str(device), dtype=str(dtype).replace("torch.", ""), attn_impl=attn,
                    attn_why=why, n_params=sum(p.numel() for p in model.parameters()))
    model.load_info = info
    if verbose:
        print(f"[load] {info.line()}", file=sys.stderr)
    return model, tokenizer


# --------------------------------------------------------------------------- dry run / memory estimate

# Architecture of the full preset's base, so the estimate works offline (no hub access needed).
KNOWN_ARCHS: dict[str, dict[str, Any]] = {
    "Qwen/Qwen3-4B": {k: QWEN3_4B[k] for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                "num_attention_heads", "num_key_value_heads", "head_dim",
                                                "vocab_size", "tie_word_embeddings")},
}


def _arch(config: TrainConfig) -> dict[str, Any]:
    if config.model in KNOWN_ARCHS:
        return dict(KNOWN_ARCHS[config.model])
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(resolve_model_path(config.model))
    return dict(hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
                num_key_value_heads=c.num_key_value_heads,
                head_dim=getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads,
                vocab_size=c.vocab_size, tie_word_embeddings=bool(getattr(c, "tie_word_embeddings", False)))


def estimate_memory(config: TrainConfig, prompt_tokens: int | None = None) -> dict[str, float]:
    """Rough peak GPU memory (GiB) of one training step, by component. An estimate, not a measurement.

    Assumes: wrapped modules hold factored U [d_out, r], S [r], Vh [r, d_in] plus one dense merged copy
    for generation; gradient checkpointing keeps one [B, L, d] tensor per layer; logits only on
    completion positions; the largest half-group (max(G_s, G_t) rows) is in the graph at a time.
    """
    a = _arch(config)
    d, ff, L, V = a["hidden_size"], a["intermediate_size"], a["num_hidden_layers"], a["vocab_size"]
    hq, hkv, hd = a["num_attention_heads"], a["num_key_value_heads"], a["head_dim"]
    on_gpu = config.dtype in ("auto", "bfloat16", "float16")
    b = 2 if on_gpu else 4                                     # bytes per element of the policy dtype
    gib = 2.0**30
    shapes = {  # name: (d_out, d_in) per layer
        "q_proj": (hq * hd, d), "k_proj": (hkv * hd, d), "v_proj": (hkv * hd, d), "o_proj": (d, hq * hd),
        "gate_proj": (ff, d), "up_proj": (ff, d), "down_proj": (d, ff),
    }
    wrapped = {k: v for k, v in shapes.items() if k in config.target_modules}
    unwrapped = {k: v for k, v in shapes.items() if k not in config.target_modules}
    dense = sum(o * i for o, i in shapes.values()) * L
    r_sum = sum(min(o, i) for o, i in wrapped.values()) * L
    factored = sum(o * min(o, i) + min(o, i) * i + min(o, i) for o, i in wrapped.values()) * L
    emb = V * d * (1 if a["tie_word_embeddings"] else 2)
    Lp = prompt_tokens if prompt_tokens is not None else min(config.max_prompt_tokens, 1024)
    T = Lp + config.max_new_tokens
    Bgen = config.prompts_per_step * config.student_per_group
    Bfb = max(config.student_per_group, config.teacher_per_group, 1)
    est = {
        "weights_factored": (factored + sum(o * i for o, i in unwrapped.values()) * L + emb) * b / gib,
        "weights_dense_merged": sum(o * i for o, i in wrapped.values()) * L * b / gib,
        # residual form: the original W kept beside the merged copy
        "weights_dense_original": (sum(o * i for o, i in wrapped.values()) * L * b / gib
                                   if config.adapter_form == "residual" else 0.0),
        "trainable_and_adam": r_sum * 4 * 4 / gib,             # delta_S, grad, exp_avg, exp_avg_sq in fp32
        "kv_cache_generation": 2 * L * hkv * hd * T * Bgen * b / gib,
        # checkpointed: one [B, T, d] per layer saved + one layer's internals during recompute
        "activations_checkpointed": (L * Bfb * T * d + Bfb * T * (4 * d + 3 * ff + 2 * r_sum // L)) * b / gib,
        "logits_completion_only": Bfb * config.max_new_tokens * V * b / gib + config.max_new_tokens * V * 4 / gib,
    }
    est["dense_params_billion"] = (dense + emb) / 1e9
    est["total_gib"] = sum(v for k, v in est.items() if k not in ("dense_params_billion",))
    return est


def dry_run(config: TrainConfig) -> dict[str, Any]:
    """Resolved config + a peak-memory estimate; what `harness run --dry-run` prints. Loads no weights."""
    device = resolve_device()
    attn, why = resolve_attn(config, device)
    out: dict[str, Any] = {
        "config": config.to_dict(),
        "config_hash": config.config_hash(),
        "device": str(device),
        "dtype": str(resolve_dtype(config, device)).replace("torch.", ""),
        "attn_impl": f"{attn} ({why})",
        "student_per_group": config.student_per_group,
        "teacher_per_group": config.teacher_per_group,
    }
    try:
        out["memory_gib"] = {k: round(v, 2) if not math.isnan(v) else None for k, v in estimate_memory(config).items()}
    except Exception as e:  # an unknown hub id offline: say so rather than fail the dry run
        out["memory_gib"] = f"unavailable: {e}"
    return out


def decoder_layers(model) -> torch.nn.ModuleList:
    """The transformer blocks of an HF causal LM (model.model.layers for Llama/Qwen-style models)."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise AttributeError(f"cannot find decoder layers on {type(model).__name__}")
    return layers
