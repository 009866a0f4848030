"""The builtin smoke substrate: deterministic, loadable through from_pretrained, and its tokenizer round-trips."""
from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from policy.substrate import builtin_manifest, build_tokenizer, ensure_builtin


def test_smoke_is_deterministic_and_cached(tmp_path):
    a = ensure_builtin("smoke", artifacts_dir=tmp_path / "a")
    b = ensure_builtin("smoke", artifacts_dir=tmp_path / "b")
    assert a.name == b.name  # same recipe hash
    assert builtin_manifest(a)["weights_sha256"] == builtin_manifest(b)["weights_sha256"]
    mtime = (a / "model.safetensors").stat().st_mtime_ns
    assert ensure_builtin("smoke", artifacts_dir=tmp_path / "a") == a  # reused, not rebuilt
    assert (a / "model.safetensors").stat().st_mtime_ns == mtime


def test_smoke_loads_and_generates(tmp_path):
    path = ensure_builtin("smoke", artifacts_dir=tmp_path)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == "qwen3"
    assert model.config.vocab_size >= len(tok)
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "add two numbers"}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True, enable_thinking=False)
    assert text.startswith("<|im_start|>system\nbe brief<|im_end|>\n") and text.endswith("<|im_start|>assistant\n")
    enc = tok(text, return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(**enc, max_new_tokens=8, do_sample=True)
    assert out.shape[1] > enc["input_ids"].shape[1]
    assert tok.eos_token == "<|im_end|>" and model.config.eos_token_id == tok.eos_token_id


def test_tokenizer_round_trips_unseen_text(tmp_path):
    tok = build_tokenizer(["def f(x):\n    return x + 1\n"] * 20, tmp_path, vocab_size=300)
    for text in ["class Solution:\n\tdef g(self) -> int: return 0  # é ✓\n", "", "  \n\n", "ü" * 5]:
        assert tok.decode(tok(text)["input_ids"]) == text
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded("return x")["input_ids"] == tok("return x")["input_ids"]
    # special tokens are single ids, not split into bytes
    assert len(tok("<|im_end|>")["input_ids"]) == 1
