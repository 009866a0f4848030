"""A Qwen3-4B-architecture model and a Qwen3-style tokenizer, built here from the public config (no hub).

`save_local_qwen3(out_dir, shrink=...)` writes a save_pretrained directory that `load_policy` loads exactly as
it loads "Qwen/Qwen3-4B" (AutoModelForCausalLM / AutoTokenizer.from_pretrained by path). Random weights: it
exercises the full preset's code path and its memory, never its learning. Used by the CPU full-path test
(shrink=True: 2 layers, small width) and by `make gpu-check` (shrink=False: the real 4B shapes).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

# Qwen/Qwen3-4B config.json (public), minus the token ids, which come from the local tokenizer.
QWEN3_4B: dict[str, Any] = dict(
    hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32, num_key_value_heads=8,
    head_dim=128, vocab_size=151936, max_position_embeddings=40960, max_window_layers=36, rms_norm_eps=1e-6,
    rope_theta=1_000_000.0, hidden_act="silu", attention_bias=False, attention_dropout=0.0, tie_word_embeddings=True,
    use_sliding_window=False, sliding_window=None, initializer_range=0.02,
)
# The same architecture at CPU-test size: every kind of module stays (GQA 2:1, q/k norms, tied embeddings).
SHRINK: dict[str, Any] = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, head_dim=16, max_window_layers=2)

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Qwen3's template at the generation prompt: enable_thinking=False renders an empty, closed think block, so the
# model starts at its answer (enable_thinking=True, or the flag never passed, leaves the block to the model).
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
NO_THINK_SUFFIX = "<|im_start|>assistant\n<think>\n\n</think>\n\n"


def qwen3_tokenizer(corpus: list[str] | None = None, vocab_size: int = 1024):
    """A byte-level BPE with Qwen3's chat tokens, think tags and chat template."""
    from policy.substrate import _smoke_corpus, build_tokenizer

    tok = build_tokenizer(corpus or _smoke_corpus(), vocab_size=vocab_size)
    tok.add_tokens([THINK_OPEN, THINK_CLOSE])        # added (not special) tokens, as in Qwen3's tokenizer
    tok.chat_template = QWEN3_CHAT_TEMPLATE
    return tok


def save_local_qwen3(out_dir: Path | str, shrink: bool, seed: int = 0, device: str = "cpu") -> Path:
    """Random-init Qwen3-4B architecture (shrunk or not) + tokenizer, saved in bf16 to out_dir."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from policy.substrate import IM_END, PAD_TOKEN, _save_model

    tok = qwen3_tokenizer()
    dims = {**QWEN3_4B, **(SHRINK if shrink else {})}
    if shrink:     # the shrunk model's vocab is the tokenizer's (a 150k lm_head would dominate a CPU test)
        dims["vocab_size"] = (len(tok) + 63) // 64 * 64
    config = Qwen3Config(**dims, bos_token_id=None, eos_token_id=tok.convert_tokens_to_ids(IM_END),
                         pad_token_id=tok.convert_tokens_to_ids(PAD_TOKEN), dtype="bfloat16")
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3ForCausalLM(config).to(torch.bfloat16)
    out = Path(out_dir)
    _save_model(model, tok, out)
    return out
