"""Text -> token ids for the policy: the chat-templated prompt (of a problem, a pair or an SFT example) and the
ids that end a completion. The one prompt tokeniser: the loop, V extraction, Rebound and the mini base's SFT
all encode prompts through `prompt_ids`."""
from __future__ import annotations

from typing import Sequence

from policy.config import TrainConfig


def prompt_ids(tokenizer, messages: Sequence[dict], **template_kwargs) -> list[int]:
    """Chat messages -> the templated prompt's token ids, ending in the assistant header (no special tokens
    added beyond the template's); template_kwargs go to apply_chat_template (enable_thinking)."""
    text = tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                         **template_kwargs)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


class PromptEncoder:
    """Problem -> chat-templated prompt token ids (cached by problem id)."""

    def __init__(self, tokenizer, config: TrainConfig):
        self.tok = tokenizer
        self.config = config
        self._cache: dict[int, list[int]] = {}
        self.truncated = 0

    def __call__(self, problem) -> list[int]:
        if problem.id not in self._cache:
            from sandbox.loopholes import build_prompt

            messages = build_prompt(problem, style=self.config.prompt_style)
            ids = prompt_ids(self.tok, messages, enable_thinking=self.config.enable_thinking)
            if len(ids) > self.config.max_prompt_tokens:
                # keep the end: the assistant header and the question's tail must stay adjacent
                ids = ids[-self.config.max_prompt_tokens:]
                self.truncated += 1
            self._cache[problem.id] = list(ids)
        return self._cache[problem.id]


def eos_token_ids(model, tokenizer) -> list[int]:
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in eos:
        eos.insert(0, tokenizer.eos_token_id)
    return eos
