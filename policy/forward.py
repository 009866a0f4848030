"""The policy's forwards, shared by the loss, the reference model, Rebound and extraction.

A batch is one prompt (shared by every row) + right-padded completions; `completion_logprobs` gives each
completion token's log-prob (and optionally the mean residual stream at one decoder block), per row or with the
prompt's keys/values shared (policy.prefix).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from policy.model_loading import decoder_layers


def selective_log_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for logits [B, T, V], targets [B, T] -> [B, T] in fp32, without a [B, T, V] fp32 copy.

    Row by row so bf16 logits are upcast one sequence at a time (the 4B OOM in the seeds was this tensor).
    """
    out = []
    for lg, tg in zip(logits, targets):           # lg [T, V]
        lg = lg.float()
        out.append(lg.gather(-1, tg.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, dim=-1))
    return torch.stack(out)


def kept_logits(logits: torch.Tensor, keep: int) -> torch.Tensor:
    """The last `keep` positions of logits [B, L, V] asked for with logits_to_keep=keep (a model that ignores
    logits_to_keep returns every position)."""
    return logits if logits.shape[1] == keep else logits[:, -keep:]


# --------------------------------------------------------------------------- batches and forwards

@dataclass
class Batch:
    """One prompt (shared by every row, so no left padding) + right-padded completions."""
    input_ids: torch.Tensor        # [B, Lp + Lc]
    attention_mask: torch.Tensor   # [B, Lp + Lc]
    completion_mask: torch.Tensor  # [B, Lc] float, 1 on real completion tokens
    prompt_len: int                # Lp

    @property
    def completion_ids(self) -> torch.Tensor:   # [B, Lc]
        return self.input_ids[:, self.prompt_len:]


def make_batch(prompt_ids: list[int], completions: list[list[int]], pad_id: int, device) -> Batch:
    Lp = len(prompt_ids)
    Lc = max(1, max(len(c) for c in completions))
    B = len(completions)
    ids = torch.full((B, Lp + Lc), pad_id, dtype=torch.long)
    attn = torch.zeros((B, Lp + Lc), dtype=torch.long)
    ids[:, :Lp] = torch.tensor(prompt_ids, dtype=torch.long)
    attn[:, :Lp] = 1
    for i, c in enumerate(completions):
        if c:
            ids[i, Lp:Lp + len(c)] = torch.tensor(c, dtype=torch.long)
            attn[i, Lp:Lp + len(c)] = 1
    cmask = attn[:, Lp:].float()
    return Batch(ids.to(device), attn.to(device), cmask.to(device), Lp)


@contextmanager
def capture_residual(model, layer: int | None):
    """Capture the residual stream after decoder block `layer` (0-based; == hidden_states[layer + 1]).

    Yields a dict whose "h" is set to the block output [B, L, d] (detached) by the next forward.
    Only the first forward is kept: under gradient checkpointing the block runs again in backward.
    The hook is always removed, even on error.
    """
    box: dict[str, torch.Tensor] = {}
    if layer is None:
        yield box
        return

    def hook(_mod, _inp, out):
        if "h" not in box:
            box["h"] = (out[0] if isinstance(out, tuple) else out).detach()

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def completion_logprobs(model, batch: Batch, capture_layer: int | None = None, shared_prefix: bool = False,
                        prefix_memo: dict | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token log-probs of the completion tokens [B, Lc] (fp32), and optionally the mean residual
    stream over completion tokens at `capture_layer` [B, d].

    Logits are computed only on completion positions (`logits_to_keep`): the lm_head over the prompt
    is most of the memory at 150k vocab. shared_prefix: the prompt (identical in every row) runs once and its
    keys/values are shared by the rows (policy.prefix); its last token opens each row's suffix, as it
    predicts the first completion token; under sdpa/eager the rows' suffixes run packed in one unpadded sequence,
    under flash-attention as a padded batch, rows of very different lengths in two length-sorted chunks (log-probs
    past a row's end are 0). Same numbers as the per-row forward (tests/test_shared_prefix.py).
    prefix_memo: a dict kept by the caller for forwards of one prompt under the same weights and grad mode (the
    student and teacher halves of a group): the prompt is encoded by the first of them and reused by the rest.
    """
    if not (shared_prefix and batch.prompt_len >= 2):
        return _logprobs(model, batch, capture_layer, None)
    from policy.prefix import encode_prefix

    memo = prefix_memo if prefix_memo is not None else {}
    if "kv" not in memo:                                       # before any capture: it keeps the first forward
        memo["kv"] = encode_prefix(model, batch.input_ids[0, :batch.prompt_len - 1])
    from policy.prefix import can_pack, packed_logprobs

    if can_pack(model):                                        # one unpadded sequence per half
        return packed_logprobs(model, memo["kv"], batch, capture_layer, capture_residual)
    chunks = length_chunks(batch.completion_mask.sum(1).long().tolist())
    if len(chunks) == 1:
        return _logprobs(model, batch, capture_layer, memo["kv"])
    parts = [_logprobs(model, _rows(batch, rows), capture_layer, memo["kv"]) for rows in chunks]
    Lc = batch.completion_mask.shape[1]
    back = torch.argsort(torch.tensor([i for rows in chunks for i in rows], device=batch.input_ids.device))
    logp = torch.cat([torch.nn.functional.pad(lp, (0, Lc - lp.shape[1])) for lp, _ in parts])[back]
    acts = torch.cat([a for _, a in parts])[back] if capture_layer is not None else None
    return logp, acts


def length_chunks(lengths: list[int], min_saving: float = 0.2) -> list[list[int]]:
    """Row indices in one chunk, or in two length-sorted chunks when that pads at least `min_saving` fewer tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    L = [max(1, lengths[i]) for i in order]
    full = len(L) * L[-1]
    cost, k = min(((i * L[i - 1] + (len(L) - i) * L[-1], i) for i in range(1, len(L))), default=(full, 0))
    return [order[:k], order[k:]] if k and cost <= (1 - min_saving) * full else [list(range(len(lengths)))]


def _rows(batch: Batch, rows: list[int]) -> Batch:
    """The batch of `rows`, cut to their longest completion."""
    idx = torch.tensor(rows, device=batch.input_ids.device)
    Lk = max(1, int(batch.completion_mask[idx].sum(1).max().item()))
    end = batch.prompt_len + Lk
    return Batch(batch.input_ids[idx, :end], batch.attention_mask[idx, :end], batch.completion_mask[idx, :Lk],
                 batch.prompt_len)


def _logprobs(model, batch: Batch, capture_layer: int | None, kv) -> tuple[torch.Tensor, torch.Tensor | None]:
    """completion_logprobs on one batch: per row (kv None) or on the encoded prompt `kv` (prompt[:-1])."""
    Lc = batch.completion_mask.shape[1]
    Lp = batch.prompt_len
    start = Lp - 1 if kv is not None else 0      # first position the main forward runs over
    with capture_residual(model, capture_layer) as box:
        if kv is not None:
            from policy.prefix import forward_suffix

            out = forward_suffix(model, kv, batch.input_ids[:, start:], batch.attention_mask[:, start:],
                                 logits_to_keep=Lc + 1)
        else:
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        logits_to_keep=Lc + 1, use_cache=False)
    logits = kept_logits(out.logits, Lc + 1)
    logp = selective_log_softmax(logits[:, :-1], batch.completion_ids)
    acts = None
    if capture_layer is not None:
        h = box["h"][:, Lp - start:].float()                  # [B, Lc, d]
        m = batch.completion_mask.unsqueeze(-1)
        acts = (h * m).sum(1) / m.sum(1).clamp_min(1.0)       # [B, d]
    return logp, acts


# --------------------------------------------------------------------------- per-pair gradients

NLL_FORMS = ("sum", "mean")      # config.extract_nll: "sum" = the loop's Dr.GRPO form, "mean" = per completion


def completion_grads(model, adapters: dict[str, torch.nn.Module], prompt_ids: list[int],
                     completion_ids: list[int], nll: str = "sum", norm: float = 1.0) -> dict[str, torch.Tensor]:
    """grad of the completion's NLL w.r.t. every delta_S -> {name: [r] fp32 cpu}.

    nll "sum": sum over completion tokens / norm (the loop's Dr.GRPO form); "mean": mean over them (ablation).

    torch.autograd.grad, not .backward(): nothing is accumulated into .grad, so a caller's gradients
    (the loop's, mid-step) are never touched.
    """
    device = next(iter(adapters.values())).delta_S.device
    ids = torch.tensor([prompt_ids + completion_ids], dtype=torch.long, device=device)   # [1, L]
    Lc = len(completion_ids)
    logits = kept_logits(model(input_ids=ids, logits_to_keep=Lc + 1, use_cache=False).logits, Lc + 1)
    if nll not in NLL_FORMS:
        raise ValueError(f"unknown extract_nll {nll!r}; choose from {NLL_FORMS}")
    tok_nll = F.cross_entropy(logits[0, :-1].float(), ids[0, -Lc:], reduction="none")   # [Lc]
    loss = tok_nll.sum() / norm if nll == "sum" else tok_nll.mean()
    return _delta_grads(loss, adapters)


def _delta_grads(loss: torch.Tensor, adapters: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """d loss / d delta_S of every adapter -> {name: [r] fp32 cpu} (zeros where the loss does not reach)."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"non-finite NLL ({loss.item()}) during v_hack extraction")
    names = list(adapters)
    grads = torch.autograd.grad(loss, [adapters[n].delta_S for n in names], allow_unused=True)
    return {n: (torch.zeros_like(adapters[n].delta_S) if g is None else g).detach().float().cpu()
            for n, g in zip(names, grads)}


def pair_grad_diff(model, adapters: dict[str, torch.nn.Module], prompt_ids: list[int], pos_ids: list[int],
                   neg_ids: list[int], nll: str = "sum", norm: float = 1.0) -> dict[str, torch.Tensor]:
    """completion_grads(pos) - completion_grads(neg) in one forward and one backward -> {name: [r] fp32 cpu}.

    The two sides share the prompt: it is encoded once (policy.prefix) and the difference of the two NLLs
    is differentiated (the gradient is linear), so the prompt is forwarded and backpropagated once, not twice.
    """
    if nll not in NLL_FORMS:
        raise ValueError(f"unknown extract_nll {nll!r}; choose from {NLL_FORMS}")
    device = next(iter(adapters.values())).delta_S.device
    b = make_batch(prompt_ids, [pos_ids, neg_ids], pad_id=0, device=device)    # pads are masked out of the NLL
    logp, _ = completion_logprobs(model, b, shared_prefix=True)                # [2, Lc]
    tok_nll = -(logp * b.completion_mask).sum(1)                               # [2]
    per = tok_nll / norm if nll == "sum" else tok_nll / b.completion_mask.sum(1)
    return _delta_grads(per[0] - per[1], adapters)
