"""A lean sampling loop for rows that share prompts: each prompt is prefilled once, its cache copied to its rows.

model.generate(rows' ids, mask) on B left-padded rows does, per token: prepare the inputs, build a 4-D mask from the
2-D one, grow every layer's cache by torch.cat, run the logits processors, softmax, torch.multinomial, and check the
stopping criteria. At mini's size that overhead is a large part of a step. Here:

    prefill  model(ids [U, L])                   the U distinct prompts once, positions from the mask (as HF does)
    cache    [B, h, L + max_new, d] per layer    preallocated; the prompt's keys/values copied to its rows, each new
                                                 token written in place (no cat), the additive mask sliced, not rebuilt
    decode   model(next [live rows, 1]) -> HF's OWN logits processors and stopping criteria (built by generate's
             helpers from the same GenerationConfig) -> softmax -> torch.multinomial over all B rows, the pad/eos and
             early-stop rules of GenerationMixin._sample; rows that have ended leave the forward (generate keeps
             feeding them pad, whose draws it throws away)

so the draws are generate's: the same processors in the same order on the same scores (up to float rounding of a
differently batched forward), one multinomial call of the same shape per token, the same number of calls (the
loop stops when every row has hit eos, as generate does), so torch's RNG ends in the same state
(tests/test_shared_prefix.py). `supported` says when it applies: sampling, one beam, sdpa/eager attention (the
additive 4-D mask; flash-attention keeps model.generate), and only processors/criteria in the lists below;
otherwise rollout.generate calls model.generate. Uses generate's private helpers (transformers 5.x; the locks pin
5.24): a version that changes them makes `supported` False, not the draws wrong.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

# Processors that read only (input_ids, scores), and criteria that read only input_ids: what this loop feeds them.
_PROCESSORS = {"TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper", "MinPLogitsWarper",
               "MinNewTokensLengthLogitsProcessor", "MinLengthLogitsProcessor"}
_CRITERIA = {"MaxLengthCriteria", "EosTokenCriteria"}


class _StaticLayer(DynamicLayer):
    """Preallocated keys/values [B, h, capacity, d]: update writes the new tokens in place and returns the filled
    part (a view), so decoding allocates nothing per token."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int):
        super().__init__()
        B, h, L, d = keys.shape
        self.keys = keys.new_empty(B, h, capacity, d)
        self.values = values.new_empty(B, h, capacity, values.shape[-1])
        self.keys[:, :, :L], self.values[:, :, :L] = keys, values
        self.n = L
        self.device = keys.device
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        m = key_states.shape[-2]
        self.keys[:, :, self.n:self.n + m] = key_states
        self.values[:, :, self.n:self.n + m] = value_states
        self.n += m
        return self.keys[:, :, :self.n], self.values[:, :, :self.n]

    def get_seq_length(self, *args, **kwargs) -> int:
        return self.n

    def select(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices into the current batch)."""
        self.keys, self.values = self.keys[rows], self.values[rows]


@contextmanager
def _grouped_kv_heads(device: torch.device):
    """On CPU, let sdpa read the grouped kv heads directly. transformers copies them out to every query head
    whenever a mask is passed (CUDA's fast kernels need that); torch's CPU sdpa takes the mask and enable_gqa
    together, and the copy was over half of a mini decode step's attention time. Restored on exit."""
    key = "TRANSFORMERS_SDPA_FORCE_GQA"
    if device.type != "cpu":
        yield
        return
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ[key]
        else:
            os.environ[key] = old


def _plan(model, gcfg, input_ids: torch.Tensor):
    """(generation config as generate resolves it, its logits processors, its stopping criteria), or None when
    this loop cannot reproduce generate for them."""
    from transformers import LogitsProcessorList, StoppingCriteriaList

    try:
        # as generate decides them, before the merge fills the fields in
        default_max = gcfg.max_length is None and model.generation_config.max_length is None
        default_min = gcfg.min_length is None and model.generation_config.min_length is None
        gc, extra = model._prepare_generation_config(gcfg)
        if extra or not gc.do_sample or gc.num_beams != 1 or gc.num_return_sequences not in (None, 1):
            return None
        model._prepare_special_tokens(gc, True, device=input_ids.device, batch_size=input_ids.shape[0])
        L = input_ids.shape[1]
        gc = model._prepare_generated_length(generation_config=gc, has_default_max_length=default_max,
                                             has_default_min_length=default_min,
                                             model_input_name="input_ids", input_ids_length=L, inputs_tensor=input_ids)
        procs = model._get_logits_processor(generation_config=gc, input_ids_seq_length=L, encoder_input_ids=input_ids,
                                            prefix_allowed_tokens_fn=None, logits_processor=LogitsProcessorList(),
                                            device=input_ids.device, model_kwargs={})
        stops = model._get_stopping_criteria(generation_config=gc, stopping_criteria=StoppingCriteriaList())
    except Exception:           # a transformers whose private helpers moved: use generate
        return None
    if gc._pad_token_tensor is None or {type(p).__name__ for p in procs} - _PROCESSORS \
            or {type(s).__name__ for s in stops} - _CRITERIA or not any(type(s).__name__ == "MaxLengthCriteria"
                                                                       for s in stops):
        return None
    return gc, procs, stops


def supported(gcfg, model) -> bool:
    """True when sample(model, ..., gcfg) draws what model.generate(..., generation_config=gcfg) draws."""
    if getattr(model.config, "is_encoder_decoder", False) or \
            getattr(model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    device = next(model.parameters()).device
    return _plan(model, gcfg, torch.zeros(2, 2, dtype=torch.long, device=device)) is not None


@torch.no_grad()
def sample(model, ids: torch.Tensor, attn: torch.Tensor, row_prompt: torch.Tensor, gcfg) -> torch.Tensor:
    """ids, attn [U, L]: the distinct prompts, left-padded; row_prompt [B]: which prompt each row holds.
    -> [B, L + n] token ids, what model.generate(ids[row_prompt], attn[row_prompt], generation_config=gcfg)
    returns (prompt, then the draws; pad after a row's eos; n <= max_new_tokens), with the same RNG draws."""
    from policy.prefix import cache_kwarg

    rows_ids = ids[row_prompt]
    plan = _plan(model, gcfg, rows_ids)
    if plan is None:
        raise ValueError("sampling.sample does not support this generation config (check supported() first)")
    gc, procs, stops = plan
    U, L = ids.shape
    B = row_prompt.shape[0]
    cap = gc.max_length
    pad = gc._pad_token_tensor
    dtype = next(model.parameters()).dtype

    # prefill: the U prompts once (positions from the mask, as generate derives them), then their rows' copies
    pos = (attn.long().cumsum(-1) - 1).masked_fill(attn == 0, 0)
    prefill = DynamicCache(config=model.config)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1,
                **{cache_kwarg(model): prefill})
    logits = out.logits[:, -1].to(dtype=torch.float32)[row_prompt]
    cache = Cache(layers=[_StaticLayer(lay.keys[row_prompt], lay.values[row_prompt], cap - 1)
                          for lay in prefill.layers])
    del out, prefill
    # the additive mask over [prompt, new tokens]: pads never seen, every generated slot seen once written
    mask = torch.zeros(B, 1, 1, cap, dtype=dtype, device=ids.device)
    mask[:, 0, 0, :L].masked_fill_(attn[row_prompt] == 0, torch.finfo(dtype).min)
    next_pos = pos[row_prompt, -1:] + 1                                   # [B, 1]

    seq = torch.empty(B, cap, dtype=torch.long, device=ids.device)
    seq[:, :L] = rows_ids
    unfinished = torch.ones(B, dtype=torch.long, device=ids.device)
    kw = {cache_kwarg(model): cache, "use_cache": True, "logits_to_keep": 1}     # looked up once, not per token
    with _grouped_kv_heads(ids.device):
        return _decode(model, seq, L, logits, procs, stops, pad, unfinished, mask, next_pos, kw)


def _decode(model, seq, L, logits, procs, stops, pad, unfinished, mask, next_pos, kw) -> torch.Tensor:
    """GenerationMixin._sample's loop from the first token's logits on; seq [B, capacity] holds the prompts.

    Rows that have ended leave the forward (generate keeps feeding them pad): the cache is compacted to the live
    rows when one ends, and an ended row's scores are a flat 0. Its draw is replaced by pad anyway, and
    torch.multinomial still runs on all B rows, so every live row's draw and the RNG state are generate's."""
    n = L
    cache = kw[next(k for k in kw if k not in ("use_cache", "logits_to_keep"))]
    live = torch.arange(seq.shape[0], device=seq.device)          # rows in the cache, in order
    while True:
        scores = logits
        for p in procs:         # LogitsProcessorList.__call__ in its order, without its per-call inspect.signature
            scores = p(seq[:, :n], scores)
        tok = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        tok = tok * unfinished + pad * (1 - unfinished)                   # finished rows get pad
        seq[:, n] = tok
        n += 1
        unfinished = unfinished & ~stops(seq[:, :n], None)
        if unfinished.max() == 0:
            break
        now = unfinished.nonzero().squeeze(1)
        if now.shape[0] < live.shape[0]:                                  # rows ended: drop them from the cache
            keep = torch.searchsorted(live, now)
            for layer in cache.layers:
                layer.select(keep)
            live = now
        if live.shape[0] == seq.shape[0]:                                 # every row still going: no gathers
            out = model(input_ids=tok[:, None], attention_mask=mask[..., :n], position_ids=next_pos, **kw)
            logits = out.logits[:, -1].to(dtype=torch.float32)
        else:
            out = model(input_ids=tok[live, None], attention_mask=mask[live, ..., :n], position_ids=next_pos[live],
                        **kw)
            logits = torch.zeros_like(logits)
            logits[live] = out.logits[:, -1].to(dtype=torch.float32)
        next_pos = next_pos + 1
    return seq[:, :n]
