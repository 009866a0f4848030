"""Shared-prefix forward: the rows of one group share a prompt, so encode it once and let every row attend to it.

Per-row (the reference path), each of the B rows forwards its own copy of the prompt:

    model([prompt, completion_i])                              B x (Lp + Lc) tokens

Shared (Prefix Grouper, Liu et al. 2025, arXiv 2506.05433): the prefix runs once, batch 1, and its per-layer
keys/values (after RoPE, at positions 0..P-1) are expanded along the batch to the B rows; the suffixes run right
padded at positions P.. with an attention mask over prefix + suffix:

    K_l, V_l [1, h, P, d]   = model(prefix)                  P tokens, with gradient when the caller has it on
    out                     = model(suffix_i | K_l, V_l)     B x S tokens; suffix position j is absolute P + j

Causal attention makes the two exact: a prefix token never sees a suffix token, so its keys/values are the same
in every row. `expand` keeps one autograd node for the prefix, so each row's gradient flows back into the single
prefix forward and sums there, as the per-row path sums it over the B copies.

Gradient checkpointing: transformers drops a cache in checkpointed blocks because a block that WRITES the cache
would write it again when backward recomputes it. Both caches here are pure under replay: the recording layer
keeps only the first keys/values it is given (returns them unchanged) and the replay layer returns
prefix ++ new without storing anything; so blocks are marked `_can_checkpoint_with_cache` while they run here.
Packed suffixes (forward_packed, where can_pack): rather than a padded [B, S] batch over the expanded prefix, a
half's B suffixes run as ONE unpadded sequence [1, sum S_i] on the batch-1 prefix keys/values, under a block-causal
4-D additive mask: suffix i sees the whole prefix and its own earlier tokens, never another row's; its positions
restart at P. No padding tokens, one row of small ops instead of B, and the prefix's keys/values are not expanded.
The cross-row block of the score matrix is computed and then masked ([T, P + T] per head, T = sum S_i): small next
to the padded path's compute at these lengths, but on `full` (G = 12, ~1k-token completions) the sdpa math kernel
would materialise it; flash_attention_2 takes no 4-D mask, so it (and anything can_pack refuses) keeps the padded path.
Generation (prefill_shared): each distinct prompt of a generate() chunk is prefilled once and its cache rows are
selected for the chunk's rows; HF generate then feeds only the last prompt token, so the draws are the per-row ones.
Needs transformers' layered Cache API (>= 4.56; the locks pin 5.24).
"""
from __future__ import annotations

import inspect
from contextlib import contextmanager

import torch
from transformers.cache_utils import Cache, DynamicLayer


class _PrefixDone(Exception):
    """Raised by the last layer's recorder once it holds its keys/values: nothing after them is needed."""


class _RecordLayer(DynamicLayer):
    """Keeps the first keys/values it sees ([1, h, P, d]) and returns them unchanged: the prefix attends only to
    itself, and a checkpointed block's recompute in backward neither re-stores nor concatenates.
    last: stop the forward right there (the last block's attention, o_proj, MLP and the final norm over the
    prefix feed nothing: about a fifth of mini's 2-block prefix forward)."""

    def __init__(self, last: bool = False):
        super().__init__()
        self.last = last

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.device = key_states.device
            self.keys, self.values = key_states, value_states
            self.is_initialized = True
        if self.last:
            raise _PrefixDone
        return key_states, value_states


class _ReplayLayer(DynamicLayer):
    """Holds the prefix's keys/values [B, h, P, d] (an expand of the batch-1 tensors) and returns
    prefix ++ new on every call without storing, so a recompute sees exactly what the forward saw."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor):
        super().__init__()
        self.device = keys.device
        self.keys, self.values = keys, values
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)


@contextmanager
def _blocks_read_cache(model):
    """Let checkpointed decoder blocks keep our (replay-pure) cache; restored on exit."""
    from policy.model_loading import decoder_layers

    layers = list(decoder_layers(model))
    had = [("_can_checkpoint_with_cache" in vars(b), vars(b).get("_can_checkpoint_with_cache")) for b in layers]
    try:
        for b in layers:
            b._can_checkpoint_with_cache = True
        yield
    finally:
        for b, (own, val) in zip(layers, had):
            if own:
                b._can_checkpoint_with_cache = val
            else:
                del b._can_checkpoint_with_cache


def cache_kwarg(model) -> str:
    """transformers 5.x calls it `cache` (`past_key_values` deprecated); 4.x only knows `past_key_values`."""
    return "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"


def _decoder(model):
    return model.get_decoder() if hasattr(model, "get_decoder") else model.model


def _checkpointing(model) -> bool:
    name = next((n for n in ("is_activation_checkpointing", "is_gradient_checkpointing") if hasattr(type(model), n)),
                None)        # transformers 5 renamed it; the old name warns
    return bool(getattr(model, name)) if name else False


def encode_prefix(model, prefix_ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """prefix_ids [P] -> per layer (keys, values) [1, h_kv, P, d], with gradient if grad is enabled.
    Runs the decoder stack only (no lm_head: nothing predicts from the prefix's positions but its last,
    which the caller makes the first token of the suffix)."""
    n = len(_decoder(model).layers)
    # Stop after the last block's keys/values, except where a checkpointed block would recompute (and so raise
    # again) in backward.
    stop = not _checkpointing(model)
    cache = Cache(layers=[_RecordLayer(last=stop and i == n - 1) for i in range(n)])
    ids = prefix_ids.reshape(1, -1)
    try:
        with _blocks_read_cache(model):
            _decoder(model)(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False,
                            position_ids=torch.arange(ids.shape[1], device=ids.device).unsqueeze(0),
                            **{cache_kwarg(_decoder(model)): cache})
    except _PrefixDone:
        pass
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    if any(k is None for k, _ in kv):
        raise RuntimeError("the prefix forward did not reach every layer's cache")
    return kv


def forward_suffix(model, kv: list[tuple[torch.Tensor, torch.Tensor]], suffix_ids: torch.Tensor,
                   suffix_mask: torch.Tensor, **kwargs):
    """The causal LM's output on [prefix, suffix_i] for each row i, given the prefix's encode_prefix(...) `kv`.

    suffix_ids, suffix_mask [B, S] (right-padded; mask 1 on real tokens). kwargs go to the model (e.g.
    logits_to_keep). Logits and hidden states cover the suffix only: out.logits[:, j] is what the per-row
    forward gives at absolute position P + j.
    """
    B, S = suffix_ids.shape
    P = kv[0][0].shape[-2]
    cache = Cache(layers=[_ReplayLayer(k.expand(B, -1, -1, -1), v.expand(B, -1, -1, -1)) for k, v in kv])
    attn = torch.cat([torch.ones(B, P, dtype=suffix_mask.dtype, device=suffix_mask.device), suffix_mask], dim=1)
    pos = torch.arange(P, P + S, device=suffix_ids.device).unsqueeze(0).expand(B, -1)
    with _blocks_read_cache(model):
        return model(input_ids=suffix_ids, attention_mask=attn, position_ids=pos, use_cache=False,
                     **{cache_kwarg(model): cache}, **kwargs)


@torch.no_grad()
def prefill_shared(model, ids: torch.Tensor, attn: torch.Tensor, row_prompt: torch.Tensor):
    """Generation's prefill with each prompt run once: ids, attn [U, L] (the U distinct prompts, left-padded) and
    row_prompt [B] (which of them each of generate's B rows holds) -> a cache over ids[:, :-1] for the B rows.

    Positions as HF generate derives them from the mask (cumsum - 1, 0 on pads), so model.generate(the rows' ids
    and mask, cache=this) feeds only the last prompt token and samples exactly as from scratch.
    """
    from transformers.cache_utils import DynamicCache

    pos = (attn.long().cumsum(-1) - 1).masked_fill(attn == 0, 0)
    cache = DynamicCache(config=model.config)
    model(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=pos[:, :-1], use_cache=True,
          logits_to_keep=1, **{cache_kwarg(model): cache})
    cache.batch_select_indices(row_prompt)
    return cache


def can_pack(model) -> bool:
    """forward_packed needs an additive 4-D mask, which sdpa and eager attention take (flash-attention does not)."""
    return getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager")


def block_causal_mask(lengths: list[int], P: int, dtype: torch.dtype, device) -> torch.Tensor:
    """[1, 1, T, P + T] additive mask for suffixes of `lengths` packed after a shared P-token prefix (T = sum):
    0 where a query may look (every prefix column; its own suffix's columns up to itself), dtype-min elsewhere."""
    T = sum(lengths)
    seg = torch.repeat_interleave(torch.arange(len(lengths), device=device), torch.tensor(lengths, device=device))
    idx = torch.arange(T, device=device)
    own = (seg[:, None] == seg[None, :]) & (idx[None, :] <= idx[:, None])             # [T, T]
    allowed = torch.cat([torch.ones(T, P, dtype=torch.bool, device=device), own], dim=1)
    return torch.zeros(T, P + T, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)[None, None]


def forward_packed(model, kv: list[tuple[torch.Tensor, torch.Tensor]], suffixes: list[torch.Tensor], **kwargs):
    """The causal LM on [prefix, suffix_i] for every i, with the suffixes packed into one batch-1 sequence.

    kv: encode_prefix(...) ([1, h, P, d] per layer); suffixes: 1-D id tensors (lengths S_i >= 1). kwargs go to the
    model (e.g. logits_to_keep). out.logits[0, sum(S_<i) + j] is what the per-row forward gives at absolute
    position P + j of row i.
    """
    P = kv[0][0].shape[-2]
    lengths = [int(s.shape[0]) for s in suffixes]
    ids = torch.cat(suffixes).unsqueeze(0)
    pos = torch.cat([torch.arange(P, P + n, device=ids.device) for n in lengths]).unsqueeze(0)
    mask = block_causal_mask(lengths, P, kv[0][0].dtype, ids.device)
    cache = Cache(layers=[_ReplayLayer(k, v) for k, v in kv])
    with _blocks_read_cache(model):
        return model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False,
                     **{cache_kwarg(model): cache}, **kwargs)


def packed_logprobs(model, kv, batch, capture_layer: int | None, capture_residual):
    """completion_logprobs (policy.forward) on the encoded prompt `kv` (prompt[:-1]) with the rows packed:
    -> per-token log-probs [B, Lc] (0 past a row's end) and, with capture_layer, the mean residual [B, d].
    capture_residual: policy.forward's (passed in, as policy.forward imports this module)."""
    Lp = batch.prompt_len
    B, Lc = batch.completion_mask.shape
    n = batch.completion_mask.sum(1).long().tolist()             # real completion tokens per row
    # row i's suffix: the prompt's last token (it predicts the first completion token), then its n_i tokens; the
    # last one predicts nothing and no later token sees it, so it is left out unless its activation is captured
    keep_last = capture_layer is not None or min(n) == 0
    S = [k + 1 if keep_last else k for k in n]
    suffixes = [batch.input_ids[i, Lp - 1:Lp - 1 + S[i]] for i in range(B)]
    starts = [0]
    for k in S[:-1]:
        starts.append(starts[-1] + k)
    dev = batch.input_ids.device
    predict = torch.cat([torch.arange(s, s + k, device=dev) for s, k in zip(starts, n)])   # positions with a target
    with capture_residual(model, capture_layer) as box:
        out = forward_packed(model, kv, suffixes, logits_to_keep=predict)
    logits = out.logits[0]
    if logits.shape[0] != predict.shape[0]:                      # a model that ignores logits_to_keep
        logits = logits[predict]
    logp = torch.zeros(B, Lc, dtype=torch.float32, device=dev)
    rows = []
    for i, (lg, k) in enumerate(zip(logits.split(n), n)):         # row by row: one row's fp32 logits at a time
        lg = lg.float()
        tg = batch.input_ids[i, Lp:Lp + k]
        rows.append(lg.gather(-1, tg.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, dim=-1))
    mask = batch.completion_mask.bool()
    logp = logp.masked_scatter(mask, torch.cat(rows)) if rows else logp
    acts = None
    if capture_layer is not None:
        h = box["h"][0].float()                                    # [T, d]
        comp = predict + 1                                         # the completion tokens' own positions
        seg = torch.repeat_interleave(torch.arange(B, device=dev), torch.tensor(n, device=dev))
        acts = torch.zeros(B, h.shape[-1], device=dev).index_add_(0, seg, h[comp])
        acts = acts / torch.tensor(n, device=dev).clamp_min(1).unsqueeze(1).float()
    return logp, acts
