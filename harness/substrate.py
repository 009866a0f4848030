"""Builtin substrates: base models + tokenizers the project builds itself, so nothing is downloaded.

    builtin:smoke  tiny random-init Qwen3 (hidden 64, 2 layers) + a byte-level BPE tokenizer trained on a fixed
                   code corpus; built in seconds; for tests and CI.
    builtin:mini   a few-M-param Qwen3 + a BPE tokenizer trained on the problem corpus, warm-started by SFT on
                   clean canonical solutions (and honest test code) of the TRAINING problems; see `build_mini`.

Both are saved with save_pretrained, so `AutoModelForCausalLM.from_pretrained(path)` /
`AutoTokenizer.from_pretrained(path)` load them exactly like a hub model (harness/model_loading.py).
Each lives under ARTIFACTS_DIR/builtin/<name>-<recipe hash>: the hash covers everything that determines the
weights (recipe dict, corpus/data hash, builder version), so a second call reuses the directory.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from harness.paths import ARTIFACTS_DIR

# Bump when the build procedure changes in a way the recipe dict does not capture.
BUILDER_VERSION = 1

# Qwen-style special tokens; eos is <|im_end|> so generation stops at the end of the assistant turn.
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [PAD_TOKEN, IM_START, IM_END]

# Qwen3's template minus the <think> block: thinking is off in this project, and extra template kwargs
# (enable_thinking=...) are simply unused variables to jinja, so passing them is harmless.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


# --------------------------------------------------------------------------- hashing / caching

def _sha(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def texts_hash(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def _cached_build(name: str, key: dict[str, Any], build_fn, artifacts_dir: Path | None = None) -> Path:
    """Build into a temp dir and rename it into place: concurrent builders (pytest -n 2) never see half a dir."""
    digest = _sha({"builder_version": BUILDER_VERSION, **key})[:16]
    root = Path(artifacts_dir or ARTIFACTS_DIR) / "builtin"
    final = root / f"{name}-{digest}"
    if (final / "builtin.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        manifest = build_fn(tmp) or {}
        manifest.update(name=name, recipe_hash=digest, key=key, builder_version=BUILDER_VERSION,
                        weights_sha256=_file_sha(tmp / "model.safetensors"))
        (tmp / "builtin.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))
        try:
            os.rename(tmp, final)
        except OSError:  # another process won the race; its build is identical by construction
            if not (final / "builtin.json").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- tokenizer

def build_tokenizer(corpus_texts: list[str], out_dir: Path | str | None = None, vocab_size: int = 2048):
    """Train a byte-level BPE on `corpus_texts`; return a transformers PreTrainedTokenizerFast (saved if out_dir).

    Byte-level: every string round-trips, whatever the corpus covered.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(corpus_texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=PAD_TOKEN,
        additional_special_tokens=[IM_START], clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"  # decoder-only batched generation
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


# --------------------------------------------------------------------------- model

def qwen3_config(tokenizer, **dims):
    """A Qwen3Config sized by `dims`, with vocab and special ids taken from the tokenizer."""
    from transformers import Qwen3Config

    vocab = len(tokenizer)
    vocab = (vocab + 63) // 64 * 64  # round up: tidy matmul shapes
    return Qwen3Config(
        vocab_size=vocab, bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        **dims,
    )


def _save_model(model, tokenizer, out_dir: Path) -> None:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(PAD_TOKEN)],
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN), do_sample=True,
    )
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))


# --------------------------------------------------------------------------- smoke

SMOKE_DIMS = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=16, max_position_embeddings=1024, tie_word_embeddings=True,
)
SMOKE_VOCAB = 1024


def _smoke_corpus() -> list[str]:
    """A fixed, data-free corpus: smoke must build with no dataset present. Quality is irrelevant (random weights)."""
    code = (
        "class Solution:\n    def solve(self, nums: List[int], target: int) -> int:\n"
        "        for i in range(len(nums)):\n            if nums[i] == target:\n                return i\n"
        "        return -1\n\n"
        "def run_tests():\n    assert Solution().solve([1, 2, 3], 2) == 1\n    print('ok')\n\n"
        "import sys\nfrom typing import List, Optional\nwhile left < right:\n    mid = (left + right) // 2\n"
        "dp = [0] * (n + 1)\nans = max(ans, dp[i])\nreturn sorted(set(words))\n"
    )
    chat = "<|im_start|>system\nYou are an expert Python programmer.<|im_end|>\n<|im_start|>user\nPROBLEM:\n"
    prose = ("Return the minimum number of operations. You are given an integer array nums and a string s. "
             "Write correct, efficient Python 3 code that solves the problem and passes all tests. ")
    return [code, chat, prose] * 8


def build_smoke(out_dir: Path) -> dict[str, Any]:
    import torch
    from transformers import Qwen3ForCausalLM

    tokenizer = build_tokenizer(_smoke_corpus(), vocab_size=SMOKE_VOCAB)
    config = qwen3_config(tokenizer, **SMOKE_DIMS)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    _save_model(model, tokenizer, out_dir)
    return {"n_params": sum(p.numel() for p in model.parameters())}


# --------------------------------------------------------------------------- registry

def _smoke_key() -> dict[str, Any]:
    return {"dims": SMOKE_DIMS, "vocab": SMOKE_VOCAB, "corpus": texts_hash(_smoke_corpus()), "seed": 0}


BUILTINS = {
    "smoke": (_smoke_key, build_smoke),
}


def ensure_builtin(name: str, artifacts_dir: Path | None = None) -> Path:
    """Path to the saved builtin `name` (build it if its recipe hash is not cached yet)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown builtin model {name!r}; known: {', '.join(BUILTINS)}")
    key_fn, build_fn = BUILTINS[name]
    return _cached_build(name, key_fn(), build_fn, artifacts_dir)


def builtin_manifest(path: Path | str) -> dict[str, Any]:
    return json.loads((Path(path) / "builtin.json").read_text())
