"""GRPO loss math (Dr.GRPO, single inner step), in the spirit of simple_GRPO's GRPO_step.

For one prompt's group of G rollouts with rewards R [G]:

    A_i        = R_i - mean(R)                          # Dr.GRPO: no division by std(R)
    ratio_it   = exp(logp_it - logp_it.detach())        # == 1: one inner step, so old policy == policy
    k3_it      = exp(ref_it - logp_it) - (ref_it - logp_it) - 1      # unbiased, >= 0 KL(policy || ref)
    loss       = sum_it mask_it * (-A_i * ratio_it + beta * k3_it) / NORM

NORM is a constant (P * G * max_new_tokens), not the number of tokens: Dr.GRPO's fix for the
length bias of per-sequence mean. Groups whose rewards have no spread are skipped (A == 0).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

FLAT_EPS = 1e-4   # simple_GRPO: max(R) - min(R) < 1e-4 -> no advantage signal


def group_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """rewards [G] -> advantages [G]; Dr.GRPO unbiased (mean-centred, no std division)."""
    return rewards - rewards.mean()


def is_flat(rewards: torch.Tensor, eps: float = FLAT_EPS) -> bool:
    """True when the group carries no advantage signal. NaN rewards are NOT flat (they must reach the NaN check)."""
    spread = (rewards.max() - rewards.min()).item()
    return spread < eps


def lr_at(step: int, total_steps: int, base_lr: float, warmup_frac: float) -> float:
    """Learning rate for 0-based step `step`: linear warmup then cosine decay to 0 at `total_steps`."""
    warmup = int(round(warmup_frac * total_steps))
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def loss_normaliser(prompts_per_step: int, group_size: int, max_new_tokens: int) -> float:
    return float(prompts_per_step * group_size * max_new_tokens)


def selective_log_softmax(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) for logits [B, T, V], targets [B, T] -> [B, T] in fp32, without a [B, T, V] fp32 copy.

    Row by row so bf16 logits are upcast one sequence at a time (the 4B OOM in the seeds was this tensor).
    """
    out = []
    for lg, tg in zip(logits, targets):           # lg [T, V]
        lg = lg.float()
        out.append(lg.gather(-1, tg.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(lg, dim=-1))
    return torch.stack(out)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || ref) on policy samples; >= 0, unbiased."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1.0


def dr_grpo_loss(logp: torch.Tensor, ref_logp: torch.Tensor | None, adv: torch.Tensor, mask: torch.Tensor,
                 beta: float, norm: float) -> torch.Tensor:
    """logp, ref_logp, mask [B, T]; adv [B]; -> scalar loss (sum over tokens / constant)."""
    ratio = torch.exp(logp - logp.detach())                 # == 1, carries d logp
    per_tok = -adv.unsqueeze(1) * ratio
    if beta and ref_logp is not None:
        per_tok = per_tok + beta * k3_kl(logp, ref_logp)
    return (per_tok * mask).sum() / norm


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


def decoder_layers(model) -> torch.nn.ModuleList:
    """The transformer blocks of an HF causal LM (model.model.layers for Llama/Qwen-style models)."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise AttributeError(f"cannot find decoder layers on {type(model).__name__}")
    return layers


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
    keys/values are shared by the rows (harness.train.prefix); its last token opens each row's suffix, as it
    predicts the first completion token; under sdpa/eager the rows' suffixes run packed in one unpadded sequence,
    under flash-attention as a padded batch, rows of very different lengths in two length-sorted chunks (log-probs
    past a row's end are 0). Same numbers as the per-row forward (tests/test_shared_prefix.py).
    prefix_memo: a dict kept by the caller for forwards of one prompt under the same weights and grad mode (the
    student and teacher halves of a group): the prompt is encoded by the first of them and reused by the rest.
    """
    if not (shared_prefix and batch.prompt_len >= 2):
        return _logprobs(model, batch, capture_layer, None)
    from harness.train.prefix import encode_prefix

    memo = prefix_memo if prefix_memo is not None else {}
    if "kv" not in memo:                                       # before any capture: it keeps the first forward
        memo["kv"] = encode_prefix(model, batch.input_ids[0, :batch.prompt_len - 1])
    from harness.train.prefix import can_pack, packed_logprobs

    if can_pack(model):                                        # one unpadded sequence per half
        return packed_logprobs(model, memo["kv"], batch, capture_layer)
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
            from harness.train.prefix import forward_suffix

            out = forward_suffix(model, kv, batch.input_ids[:, start:], batch.attention_mask[:, start:],
                                 logits_to_keep=Lc + 1)
        else:
            out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        logits_to_keep=Lc + 1, use_cache=False)
    logits = out.logits
    if logits.shape[1] != Lc + 1:            # a model that ignores logits_to_keep
        logits = logits[:, Lp - 1 - start:]
    logp = selective_log_softmax(logits[:, :-1], batch.completion_ids)
    acts = None
    if capture_layer is not None:
        h = box["h"][:, Lp - start:].float()                  # [B, Lc, d]
        m = batch.completion_mask.unsqueeze(-1)
        acts = (h * m).sum(1) / m.sum(1).clamp_min(1.0)       # [B, d]
    return logp, acts
