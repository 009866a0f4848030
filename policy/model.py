"""The Policy: the model every arm trains, in one object (as nanoGPT's model.py is the model).

A causal LM whose target linears are SVD adapters (policy.adapter), its tokenizer and prompt encoder, and what
names it: the hash of the base it was wrapped from and the digest of the SVD basis (V is meaningful only in that
basis). What callers need from it:

    policy.merged()         the dense weights W(delta_S), for fast generation
    policy.base()           the base model (delta_S = 0), for the reference forward, V and Rebound's concept
    policy.encode(problem)  the chat-templated prompt ids
    policy.logprobs(batch)  per-token completion log-probs (and a residual-stream capture)
    policy.pair_grads(...)  d(NLL(pos) - NLL(neg)) / d delta_S of one contrastive pair
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from policy.adapter import SVDLinear, adapter_disabled, basis_hash, merged, model_hash, wrap_model
from policy.config import TrainConfig
from policy.encode import PromptEncoder
from policy.forward import Batch, completion_logprobs, pair_grad_diff


@dataclass
class Policy:
    model: torch.nn.Module                 # the wrapped causal LM
    tokenizer: Any
    adapters: dict[str, SVDLinear]         # module name -> its SVD adapter
    base_hash: str                         # model_hash of the base it was wrapped from
    basis_hash: str                        # digest of the SVD factors the adapters use
    encoder: PromptEncoder | None = None   # problem -> prompt ids (None: no TrainConfig given)

    @classmethod
    def wrap(cls, model: torch.nn.Module, tokenizer, config: TrainConfig, cache_dir: str | Path | None = None,
             route: bool = False, write_cache: bool = True) -> "Policy":
        """Wrap `model`'s config.target_modules in SVD adapters (config.adapter_form) and hold what names it."""
        adapters = wrap_model(model, config.target_modules, cache_dir=cache_dir, route=route,
                              write_cache=write_cache, residual=config.adapter_form == "residual")
        return cls.of(model, tokenizer, adapters, PromptEncoder(tokenizer, config))

    @classmethod
    def of(cls, model: torch.nn.Module, tokenizer, adapters: dict[str, SVDLinear],
           encoder: PromptEncoder | None = None) -> "Policy":
        """The Policy of a model wrap_model already wrapped."""
        return cls(model, tokenizer, adapters, model_hash(model), basis_hash(model), encoder)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def load_info(self):
        """How policy.model_loading loaded it (dtype, attention kernel, path, size); None for a model built here."""
        return getattr(self.model, "load_info", None)

    def merged(self):
        """Context: the linears hold the dense W(delta_S) (generation), restored after."""
        return merged(self.model)

    def base(self):
        """Context: every adapter at delta_S = 0, i.e. the base model."""
        return adapter_disabled(self.model)

    def encode(self, problem) -> list[int]:
        return self.encoder(problem)

    def logprobs(self, batch: Batch, capture_layer: int | None = None, shared_prefix: bool = False,
                 prefix_memo: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        return completion_logprobs(self.model, batch, capture_layer, shared_prefix, prefix_memo)

    def pair_grads(self, prompt_ids: list[int], pos_ids: list[int], neg_ids: list[int], nll: str = "sum",
                   norm: float = 1.0) -> dict[str, torch.Tensor]:
        return pair_grad_diff(self.model, self.adapters, prompt_ids, pos_ids, neg_ids, nll, norm)
