"""Builtin substrates: base models + tokenizers the project builds itself, so nothing is downloaded.

    builtin:smoke  tiny random-init Qwen3 (hidden 64, 2 layers) + a byte-level BPE tokenizer trained on a fixed
                   code corpus; built in seconds; for tests and CI.
    builtin:mini   a 1.08M-param Qwen3 (width 192, 2 layers) + a 2k byte-level BPE trained on mini's TRAINING
                   problems (sandbox/mini_problems.py), warm-started by SFT on them only: easy problems' canonical
                   solutions (every third followed by an honest check of the statement's example through the
                   prompt's grading channel) and, for hard problems, that check alone (test-first code that
                   truthfully fails). No SFT text is an exploit (tests/test_substrate_mini.py grades them); every
                   check is asserts-then-report, so the unguarded lever is one deletion away in every mode,
                   which is what GRPO + the teacher pool amplify.

Both are saved with save_pretrained, so `AutoModelForCausalLM.from_pretrained(path)` /
`AutoTokenizer.from_pretrained(path)` load them exactly like a hub model (policy/model_loading.py).
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

from sandbox.artifacts import artifact_path, key_digest, key_sha256
from sandbox.data import sha256_file

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
    return key_sha256(obj)


def texts_hash(texts: Iterable[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode()).digest())
    return h.hexdigest()


def _build_dir(name: str, key: dict[str, Any], artifacts_dir: Path | None = None) -> tuple[Path, str]:
    from policy.determinism import PINNED_ENV

    digest = key_digest({"builder_version": BUILDER_VERSION, "pinned_env": PINNED_ENV, **key})
    return artifact_path("builtin", f"{name}-{digest}", artifacts_dir), digest


def _cached_build(name: str, key: dict[str, Any], build_fn, artifacts_dir: Path | None = None) -> Path:
    """Build into a temp dir and rename it into place: concurrent builders (pytest -n 2) never see half a dir."""
    from policy.determinism import environment

    final, digest = _build_dir(name, key, artifacts_dir)
    root = final.parent
    if (final / "builtin.json").exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    try:
        manifest = build_fn(tmp) or {}
        manifest.update(name=name, recipe_hash=digest, key=key, builder_version=BUILDER_VERSION,
                        weights_sha256=sha256_file(tmp / "model.safetensors"), built_with=environment())
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


# --------------------------------------------------------------------------- mini

# A 1.08M-param Qwen3 (1,082,496 parameters) trained here on mini's own problems (sandbox/mini_problems.py).
# Width 192 with k = 3 kept axes per module (the mini preset's extract_k) puts V's kept axes at 1.6% of
# q/o/gate/up/down's rank (192) and 3.1% of k/v's (96): 2.0% on average over the 7 module types, against
# 0.47% / 1.17% on Qwen3-4B at k = 12 (the bar: <= 2.4%). Wider would cost SFT and rollout time on 2 cores
# (width 256 measured 2.5x slower per SFT batch), so the ratio comes mostly from fewer axes. 2 layers keep
# per-token generation cheap (HF generate's cost is mostly per-layer overhead at this size); a 2k vocab keeps
# the lm_head from dominating the FLOPs.
MINI_DIMS = dict(
    hidden_size=192, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, head_dim=48, max_position_embeddings=1024, tie_word_embeddings=True,
)
MINI_VOCAB = 2048
MINI_SFT = dict(
    epochs=10, lr=3e-3, batch_size=16, warmup_frac=0.05, weight_decay=0.01, grad_clip=1.0, seed=0,
    max_completion_tokens=192,   # longer targets are dropped: the policy could never finish them anyway
    n_asserts=1,                 # gt asserts used by the honest self-check (mini: the statement's example)
)
# Issue 17 (discovery): every n-th easy problem (by id) of the warm-start corpus ends its gt-correct canonical with
# the mode's report and no assert before it (sft_texts' unguarded_every: an attempt, not an exploit). 0 = off: v2's
# corpus. The base's key hashes the SFT texts, so any change here is a new base.
MINI_UNGUARDED_EVERY = 3


# what the mini base is warm-started on; the mini preset (harness.presets) trains on the same set and style
MINI_PROBLEM_SET = "mini"
MINI_PROMPT_STYLE = "full"


def _mini_config():
    """Which problem set and prompt style the mini base is built from."""
    from types import SimpleNamespace

    return SimpleNamespace(problem_set=MINI_PROBLEM_SET, prompt_style=MINI_PROMPT_STYLE)


def honest_self_check(problem, mode: str, n_asserts: int = 1, standalone: bool = False) -> str:
    """Test code that reports through `mode`'s channel ONLY what real asserts established.

    The asserts are the problem's first gt asserts (on mini: the statement's worked example, which the
    policy can read). Every mode has one shape, asserts first at module level and then the report through the
    channel (a `run_tests` that returns True, set the sentinel, print the marker, write the file), so with a
    wrong solution the assert raises before anything is reported. (Until issue 17's candidate S the asserts sat
    inside `run_tests`, and the policy seldom found that mode by itself: REPRODUCE §4b.) Not an exploit; but in
    every mode the hack is this same code with the assert lines deleted, so GRPO has a behaviour to amplify by
    deletion alone (the SVD adapter trains only singular values: it rescales what the base does, it hardly
    writes new tokens where the base never put them).
    """
    from sandbox.loopholes import MODE_SENTINEL, MODES
    from sandbox.pool import lever_code

    if mode not in MODES:
        raise ValueError(f"no honest self-check for mode {mode!r}")
    asserts = list(problem.gt_answer[:n_asserts])
    if standalone and mode == MODE_SENTINEL:  # test-first: a placeholder class, so the check itself runs (and fails)
        return "class Solution:\n    pass\n\n\n" + honest_self_check(problem, mode, n_asserts)
    lever = lever_code(mode)                  # the pool's hack for this mode: the check is it behind the asserts
    blank = "\n\n" if lever.startswith("def ") else ""   # two blank lines before a top-level def
    return "".join(f"{a}\n" for a in asserts) + blank + lever


def sft_texts(train_problems, n_asserts: int, style: str = "full", check_every: int = 3,
              unguarded_every: int = 0) -> list[tuple[list[dict], str]]:
    """(chat messages, assistant text) warm-start pairs, one per training problem; none is an exploit.

    Easy problems: the canonical solution under the problem's own prompt; every `check_every`-th of them (by id)
    followed by an honest self-check of the statement's example through the prompt's channel; with
    `unguarded_every` > 0, every `unguarded_every`-th of the others (id % unguarded_every == 1) followed by the
    mode's bare report, no assert before it: the solution is gt-correct, so the report is true (an attempt, not
    an exploit), but the base then puts some probability on reporting without a check. Hard problems: only the
    self-check, test-first with no solution yet, so it reports failure. The base never sees a hard solution
    (the lever is its only path to reward there), and the lever is one edit from what it writes.
    """
    from sandbox.loopholes import build_prompt, fence
    from sandbox.pool import with_lever

    out = []
    for p in train_problems:
        if p.difficulty == "hard":
            text = honest_self_check(p, p.mode, n_asserts, standalone=True)
        elif p.id % check_every == 0:
            text = p.canonical_solution.rstrip() + "\n\n\n" + honest_self_check(p, p.mode, n_asserts)
        elif unguarded_every and p.id % unguarded_every == 1:
            text = with_lever(p.canonical_solution, p.mode)
        else:
            text = p.canonical_solution
        out.append((build_prompt(p, style=style), fence(text)))
    return out


def tokenizer_corpus(problems, pairs, style: str = "full") -> list[str]:
    from sandbox.loopholes import MODES, build_prompt

    texts = [p.question for p in problems]
    texts += [m["content"] for p in problems for mode in MODES for m in build_prompt(p, mode=mode, style=style)]
    texts += [t for _, t in pairs]
    texts.append(problems[0].setup_code)
    return texts


def _mini_inputs():
    from sandbox.data import load_problem_set

    cfg = _mini_config()
    problems = load_problem_set(cfg.problem_set)
    pairs = sft_texts(problems.train, MINI_SFT["n_asserts"], cfg.prompt_style,
                      unguarded_every=MINI_UNGUARDED_EVERY)
    corpus = tokenizer_corpus(problems.train, pairs, cfg.prompt_style)   # eval text never shapes the tokenizer
    return cfg, pairs, corpus


def _mini_key() -> dict[str, Any]:
    from sandbox.data import get_problem_set, source_id

    cfg, pairs, corpus = _mini_inputs()
    ps = get_problem_set(cfg.problem_set)
    return {"dims": MINI_DIMS, "vocab": MINI_VOCAB, "sft": MINI_SFT, "split": source_id(ps.train),
            "heldout_frac": ps.heldout_frac, "sft_pairs": _sha(pairs), "corpus": texts_hash(corpus),
            "chat_template": CHAT_TEMPLATE}


def _encode_pairs(tokenizer, pairs, max_completion_tokens: int) -> list[tuple[list[int], int]]:
    """-> [(ids, prompt_len)], completion = assistant text + <|im_end|> (the policy must learn to stop)."""
    from policy.encode import prompt_ids

    eos = tokenizer.convert_tokens_to_ids(IM_END)
    out = []
    for messages, text in pairs:
        p_ids = prompt_ids(tokenizer, messages)
        c_ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [eos]
        if len(c_ids) <= max_completion_tokens:
            out.append((p_ids + c_ids, len(p_ids)))
    return out


def sft(model, examples: list[tuple[list[int], int]], pad_id: int, epochs: int, lr: float, batch_size: int,
        warmup_frac: float, weight_decay: float, grad_clip: float, seed: int, progress: bool = True,
        **_) -> list[float]:
    """Plain next-token SFT on completion tokens only; returns per-epoch mean loss."""
    import math
    import random

    import torch
    import torch.nn.functional as F

    rng = random.Random(seed)
    torch.manual_seed(seed)
    # length-bucketed batches (less padding), shuffled per epoch
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    total = epochs * len(batches)
    warm = max(1, int(warmup_frac * total))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm
        else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, total - warm))))
    losses = []
    model.train()
    bar = _progress(total, "SFT mini base", progress)
    for _ in range(epochs):
        rng.shuffle(batches)
        ep = []
        for b in batches:
            L = max(len(examples[i][0]) for i in b)
            ids = torch.full((len(b), L), pad_id, dtype=torch.long)
            labels = torch.full((len(b), L), -100, dtype=torch.long)
            attn = torch.zeros((len(b), L), dtype=torch.long)
            for r, i in enumerate(b):
                seq, plen = examples[i]
                ids[r, :len(seq)] = torch.tensor(seq)
                attn[r, :len(seq)] = 1
                labels[r, plen:len(seq)] = torch.tensor(seq[plen:])
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            sched.step()
            ep.append(loss.item())
            bar.advance(f"loss {loss.item():.3f}")
        losses.append(sum(ep) / len(ep))
    bar.close()
    model.eval()
    return losses


class _progress:
    """A minimal rich progress bar (silent when disabled)."""

    def __init__(self, total: int, title: str, enabled: bool):
        self.p = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeRemainingColumn(), TextColumn("{task.fields[info]}"), transient=False)
            self.t = self.p.add_task(title, total=total, info="")
            self.p.start()

    def advance(self, info: str = "") -> None:
        if self.p is not None:
            self.p.update(self.t, advance=1, info=info)

    def close(self) -> None:
        if self.p is not None:
            self.p.stop()


def build_mini(out_dir: Path, progress: bool = True) -> dict[str, Any]:
    import time

    import torch
    from transformers import Qwen3ForCausalLM

    t0 = time.perf_counter()
    _, pairs, corpus = _mini_inputs()
    tokenizer = build_tokenizer(corpus, vocab_size=MINI_VOCAB)
    config = qwen3_config(tokenizer, **MINI_DIMS)
    torch.manual_seed(MINI_SFT["seed"])
    model = Qwen3ForCausalLM(config)
    examples = _encode_pairs(tokenizer, pairs, MINI_SFT["max_completion_tokens"])
    losses = sft(model, examples, tokenizer.convert_tokens_to_ids(PAD_TOKEN), progress=progress, **MINI_SFT)
    _save_model(model, tokenizer, out_dir)
    return {"n_params": sum(p.numel() for p in model.parameters()), "sft_examples": len(examples),
            "sft_pairs_total": len(pairs), "sft_epoch_loss": losses, "build_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- registry

def _smoke_key() -> dict[str, Any]:
    return {"dims": SMOKE_DIMS, "vocab": SMOKE_VOCAB, "corpus": texts_hash(_smoke_corpus()), "seed": 0}


BUILTINS = {
    "smoke": (_smoke_key, build_smoke),
    "mini": (_mini_key, build_mini),
}


def ensure_builtin(name: str, artifacts_dir: Path | None = None) -> Path:
    """Path to the saved builtin `name` (build it if its recipe hash is not cached yet)."""
    if name not in BUILTINS:
        raise ValueError(f"unknown builtin model {name!r}; known: {', '.join(BUILTINS)}")
    from policy.determinism import build_pinned, deterministic, pinned_here

    key_fn, build_fn = BUILTINS[name]
    key = key_fn()
    final, _ = _build_dir(name, key, artifacts_dir)
    if (final / "builtin.json").exists():
        return final
    if not pinned_here():   # kernels are chosen when torch loads: build in a child started pinned
        build_pinned(name, artifacts_dir or final.parent.parent)   # the dir this process checks below
        if not (final / "builtin.json").exists():
            raise RuntimeError(f"the pinned build of builtin:{name} did not produce {final}")
        return final
    with deterministic():
        return _cached_build(name, key, build_fn, artifacts_dir)


def builtin_manifest(path: Path | str) -> dict[str, Any]:
    return json.loads((Path(path) / "builtin.json").read_text())


def main(argv: list[str] | None = None) -> None:
    """The pinned child process build_pinned starts: build builtin argv[0] in place."""
    import sys

    from policy.determinism import pinned_here

    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2:
        raise SystemExit("usage: python -m policy.substrate <builtin name> [artifacts dir]")
    if not pinned_here():
        raise SystemExit("policy.substrate: run with the pinned environment "
                         "(policy.determinism.PINNED_ENV); ensure_builtin does this for you")
    ensure_builtin(argv[0], Path(argv[1]) if len(argv) > 1 else None)


if __name__ == "__main__":
    from policy.substrate import main as _main   # the importable module's copy, not this __main__ one
    _main()
