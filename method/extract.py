"""v_hack: the hack subspace of every adapted module, extracted gradient-side in the SVD basis of W.

For a contrastive pair (same prompt; hack completion h, clean completion c) the gradient the loop's
Dr.GRPO loss (policy.grpo.dr_grpo_loss) emits for that pair with advantages +1 / -1 is

    d = grad_{delta_S} NLL(h) - grad_{delta_S} NLL(c)          # [r] per module
    NLL(y) = sum_t -log p(y_t) / NORM,   NORM = P * G * max_new_tokens (the loop's constant)

each completion backwarded in isolation at delta_S = 0 (the base model). That is the loop's gradient
exactly (config.extract_nll = "sum"): a longer completion weighs more, as it does in training.
extract_nll = "mean" (the ablation) instead averages over each completion's own tokens, which weights a
completion by 1 / its length, so the shorter side of a pair counts more than it does in training. Per module we
stack the pairs' d into D [n_pairs, r] (not centred: the shared mean direction is the signal) and take

    D = U diag(s) Vh,   V = Vh[:k]  [k, r],  sv = s[:k]

Each axis is oriented by majority vote over pairs (sign such that most pairs project positively), so
"V g > 0" means "g pushes toward the hack", which is what the one-sided projection removes. Then a
GLOBAL noise floor drops every (module, axis) whose singular value falls below the `noise_quantile`
quantile of all singular values across all modules; modules left with no axis are dropped.

Kinds (the V vocabulary): real (hack pairs), shuffled (hack/clean labels swapped for a seeded random
half of the pairs; NB this spans the real V's subspace exactly and only changes axis orientation, so it
controls for the one-sided gate, and equals real under no_gate), nonhack (clean-vs-clean pairs), random (random
orthonormal rows with the real V's modules and k_m, seeded). Controls are dimension-matched to the real V: the
real V's floor decides the modules and k_m, and each control keeps its own top k_m axes there, so a control
removes exactly as many dimensions from the same modules and only the directions differ. Every V is cached on
disk by everything it depends on (`get_or_extract`).
"""
from __future__ import annotations

import json
import math
import sys
import zlib
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from policy.config import RunError
from policy.encode import prompt_ids
from policy.forward import NLL_FORMS, completion_grads, pair_grad_diff
from sandbox.artifacts import artifact_path, key_digest, write_atomic

V_FORMAT = "rh-vhack-v1"
KINDS = ("real", "random", "shuffled", "nonhack")   # the V-kind registry; controls name these
SEEDED_KINDS = ("random", "shuffled")                # kinds whose V depends on config.seed
REAL = "real"
MIN_FRAC_POSITIVE = 0.5                               # spec step 1c: held-out frac_positive must EXCEED this


class WeakVError(RunError):
    """The real V failed its held-out validation (spec step 1c) and config.allow_weak_v is off."""


NULL_V_DRAWS = 100          # random V's of the real V's shapes whose held-out frac_positive makes the gate's null
NULL_V_SEED = 10_000        # their seeds: NULL_V_SEED + i (apart from the random_v control's run seeds)
NULL_PERCENTILE = 95.0


def validation_passed(vh: "VHack") -> bool:
    """Spec step 1c on the V's stored held-out validation: frac_positive > 0.5 (no validation = not passed), and
    (issue 20) above the 95th percentile of NULL_V_DRAWS random V's of the same shapes on the same held-out pairs,
    where that null is recorded (V files from before it have only the first condition)."""
    val = vh.meta.get("validation") or {}
    fp = val.get("frac_positive")
    if not (isinstance(fp, (int, float)) and fp == fp and fp > MIN_FRAC_POSITIVE):
        return False
    p95 = val.get("null_frac_positive_p95")
    return not isinstance(p95, (int, float)) or fp > p95


def percentile(xs: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest x with at least q% of xs at or below it."""
    ys = sorted(xs)
    return ys[max(0, min(len(ys) - 1, math.ceil(len(ys) * q / 100) - 1))]


def null_validation(diffs: dict[str, torch.Tensor], vh: "VHack", draws: int = NULL_V_DRAWS) -> dict[str, Any]:
    """frac_positive of `draws` random V's with vh's modules and k_m on the same held-out pair differences:
    {null_frac_positive_p95, null_frac_positive_mean, null_n, null_percentile_of_v} (the last: the share of draws
    this V's frac_positive exceeds)."""
    fps = [validation_stats(diffs, VHack(V=random_orthonormal_like(vh, NULL_V_SEED + i)[0], sv={}))["frac_positive"]
           for i in range(draws)]
    fps = [x for x in fps if x == x]
    if not fps:
        return {"null_frac_positive_p95": None, "null_frac_positive_mean": None, "null_n": 0,
                "null_percentile_of_v": None}
    mine = validation_stats(diffs, vh)["frac_positive"]
    return {"null_frac_positive_p95": percentile(fps, NULL_PERCENTILE), "null_frac_positive_mean": sum(fps) / len(fps),
            "null_n": len(fps), "null_percentile_of_v": 100.0 * sum(x < mine for x in fps) / len(fps)}


def check_validation(vh: "VHack", config) -> dict[str, Any]:
    """Stop with WeakVError when the real V fails step 1c, unless config.allow_weak_v; -> what to record."""
    val = vh.meta.get("validation") or {}
    ok = validation_passed(vh)
    if not ok and not config.allow_weak_v:
        p95 = val.get("null_frac_positive_p95")
        null = ("" if p95 is None else
                f" and the {NULL_PERCENTILE:g}th percentile of {val.get('null_n')} random V's ({p95:.3f})")
        raise WeakVError(
            f"the real V failed held-out validation (spec step 1c): frac_positive="
            f"{val.get('frac_positive', 'n/a (no held-out pairs)')} must exceed {MIN_FRAC_POSITIVE}{null} "
            f"({val.get('n_pairs', 0)} held-out pairs, {vh.path}); nothing was trained with it. "
            f"Pass --allow-weak-v (config allow_weak_v=true) to proceed anyway and record it")
    return dict(passed=ok, allowed_weak=not ok, frac_positive=val.get("frac_positive"),
                median_cos=val.get("median_cos"), n_pairs=val.get("n_pairs"),
                null_frac_positive_p95=val.get("null_frac_positive_p95"))


# --------------------------------------------------------------------------------------------
# the artifact

@dataclass
class VHack:
    """Per-module hack subspace. V[name]: [k_m, r] orthonormal rows; sv[name]: [k_m] singular values."""
    V: dict[str, torch.Tensor]
    sv: dict[str, torch.Tensor]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None                                  # where it was loaded from / saved to

    @property
    def modules(self) -> list[str]:
        return sorted(self.V)

    def k_per_module(self) -> dict[str, int]:
        return {n: int(v.shape[0]) for n, v in self.V.items()}

    def digest(self) -> str:
        """method.projection.v_digest of this V: what a run records as its hashes["v"]."""
        from method.projection import v_digest

        return v_digest(self.V)

    def save(self, path: str | Path) -> Path:
        """safetensors: "V::<module>" and "sv::<module>" tensors; meta as JSON in the header (atomic write)."""
        path = Path(path)
        tensors = {}
        for name in self.V:
            tensors[f"V::{name}"] = self.V[name].detach().float().cpu().contiguous()
            tensors[f"sv::{name}"] = self.sv[name].detach().float().cpu().contiguous()
        header = {"format": V_FORMAT, "meta": json.dumps(self.meta, sort_keys=True, default=str)}
        # flat copies of the scalar fields so `safetensors` header dumps are readable without JSON
        for k, v in self.meta.items():
            if isinstance(v, (str, int, float, bool)):
                header[k] = str(v)
        write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> "VHack":
        V, sv = {}, {}
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
            if header.get("format") != V_FORMAT:
                raise ValueError(f"{path}: not a V file (format={header.get('format')!r})")
            for key in f.keys():
                which, _, name = key.partition("::")
                (V if which == "V" else sv)[name] = f.get_tensor(key)
        return cls(V=V, sv=sv, meta=json.loads(header.get("meta", "{}")), path=Path(path))


# --------------------------------------------------------------------------------------------
# the math on stacked pair differences (pure tensors; the synthetic tests live here)

def top_axes(D: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """D [n_pairs, r] -> (V [k', r] orthonormal rows, sv [k']) with each axis majority-vote oriented.

    k' = min(k, n_pairs, r) minus numerically-zero directions (a rank-deficient D has no axis there).
    """
    D = D.double()
    _, s, Vh = torch.linalg.svd(D, full_matrices=False)      # s [min(n, r)], Vh [min(n, r), r]
    kk = min(k, s.numel())
    s, V = s[:kk], Vh[:kk].clone()
    nonzero = s > s.max().clamp_min(1e-300) * 1e-10 if kk else s.bool()
    s, V = s[nonzero], V[nonzero]
    proj = D @ V.T                                           # [n, k'] each pair's coordinate on each axis
    votes = torch.sign(proj).sum(0)                          # (#positive - #negative) per axis
    tiebreak = torch.sign(proj.sum(0))                       # a tie goes to the sign of the summed projection
    sign = torch.where(votes != 0, torch.sign(votes), tiebreak)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    V = V * sign.unsqueeze(1)
    return V.float(), s.float()


def noise_floor(V: dict[str, torch.Tensor], sv: dict[str, torch.Tensor], quantile: float
                ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """Drop (module, axis) with sv below the global `quantile` of all singular values; drop empty modules.

    Global, not per module: a module whose every direction is noise should lose them all rather than
    keep its "best" noise axis. Returns (V, sv, threshold).
    """
    if not sv:
        return {}, {}, float("nan")
    every = torch.cat([s.double().reshape(-1) for s in sv.values()])
    if quantile <= 0 or every.numel() == 0:
        return dict(V), dict(sv), float("-inf")
    thr = torch.quantile(every, float(quantile)).item()
    V_out, sv_out = {}, {}
    for name in V:
        keep = sv[name].double() >= thr                      # sv is descending, so this keeps a prefix
        if keep.any():
            V_out[name], sv_out[name] = V[name][keep], sv[name][keep]
    return V_out, sv_out, thr


def directions_from_diffs(diffs: dict[str, torch.Tensor], k: int, quantile: float
                          ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], float]:
    """Per-module top-k oriented axes of the stacked pair differences, then the global noise floor."""
    V, sv = {}, {}
    for name in sorted(diffs):
        v, s = top_axes(diffs[name], k)
        if s.numel():
            V[name], sv[name] = v, s
    return noise_floor(V, sv, quantile)


def match_structure(V: dict[str, torch.Tensor], sv: dict[str, torch.Tensor], real: "VHack"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Keep, per module of the real V (after ITS floor), the control's top k_m axes: a control then removes
    exactly as many dimensions from exactly the same modules, so only the directions differ."""
    V_out, sv_out = {}, {}
    for name, Vr in real.V.items():
        if name in V and V[name].shape[0]:
            k_m = min(int(Vr.shape[0]), int(V[name].shape[0]))
            V_out[name], sv_out[name] = V[name][:k_m], sv[name][:k_m]
    return V_out, sv_out


def label_swaps(n_pairs: int, seed: int) -> torch.Tensor:
    """[n_pairs] bool: which pairs the shuffled control swaps (hack <-> clean): a seeded random half.

    Why exactly half: swapping negates a row of D, which leaves D's right singular vectors (the SUBSPACE)
    unchanged; only the majority-vote orientation sees the labels. With independent coin flips the vote
    is decided by whether fewer than half were swapped, i.e. one global coin per seed (V ~= +real or
    ~= -real everywhere); a balanced swap leaves each axis's orientation close to a tie instead, which is
    what "no label information" means for a one-sided projection.
    """
    g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
    swaps = torch.zeros(n_pairs, dtype=torch.bool)
    swaps[torch.randperm(n_pairs, generator=g)[: n_pairs // 2]] = True
    return swaps


def apply_swaps(diffs: dict[str, torch.Tensor], swaps: torch.Tensor) -> dict[str, torch.Tensor]:
    """Swapping a pair's labels negates its difference: d = g(hack) - g(clean) -> g(clean) - g(hack)."""
    sign = 1.0 - 2.0 * swaps.float()                         # [n] +1 kept, -1 swapped
    return {name: D * sign.unsqueeze(1).to(D.dtype) for name, D in diffs.items()}


def random_orthonormal_like(real: VHack, seed: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Same modules and k_m as `real`, rows drawn uniformly (QR of a Gaussian), seeded per (seed, module).

    sv is copied from the real V so anything that reads singular values treats both alike.
    """
    from method.projection import random_orthonormal

    V, sv = {}, {}
    for name in sorted(real.V):
        k_m, r = real.V[name].shape
        g = torch.Generator().manual_seed((int(seed) * 1_000_003 + zlib.crc32(name.encode())) % 2**63)
        V[name] = random_orthonormal(k_m, r, 1, g)[0].contiguous()     # [k_m, r], the same draws as one [r, k_m]
        sv[name] = real.sv[name].clone()
    return V, sv


def validation_stats(diffs: dict[str, torch.Tensor], vh: VHack) -> dict[str, float]:
    """Held-out check of V against pair differences it was not fitted on.

    Per module of V: d_mean = mean held-out pair difference [r].
      frac_positive     fraction of modules with cos(d_mean, V[0]) > 0 (top axis, hack-ward oriented)
      median_cos        median over modules of that cosine
      median_hackward   median over modules of ||relu(V d_mean)|| / ||d_mean|| (what projection removes)
      frac_pairs_positive  fraction of (pair, module) with V[0] . d_pair > 0
    """
    from method.projection import hackward_fraction

    cos, hw, pos, tot = [], [], 0, 0
    for name, V in vh.V.items():
        D = diffs.get(name)
        if D is None or D.numel() == 0:
            continue
        V = V.float()
        d = D.float().mean(0)
        cos.append(F.cosine_similarity(d, V[0], dim=0).item())
        hw.append(hackward_fraction(V, d).item())
        p = D.float() @ V[0]
        pos += int((p > 0).sum())
        tot += p.numel()
    if not cos:
        return dict(frac_positive=float("nan"), median_cos=float("nan"), median_hackward=float("nan"),
                    frac_pairs_positive=float("nan"), n_modules=0)
    c = torch.tensor(cos)
    return dict(frac_positive=float((c > 0).float().mean()), median_cos=float(c.median()),
                median_hackward=float(torch.tensor(hw).median()), frac_pairs_positive=pos / max(tot, 1),
                n_modules=len(cos))


# --------------------------------------------------------------------------------------------
# gradients of labelled pairs on the model

@contextmanager
def at_base(adapters: dict[str, torch.nn.Module]):
    """delta_S (and delta_S_hack) temporarily set to 0, still requiring grad; restored on exit.

    (policy.adapter.adapter_disabled would also give the base forward, but cuts the graph to delta_S.)
    """
    saved = {}
    with torch.no_grad():
        for name, m in adapters.items():
            saved[name] = (m.delta_S.detach().clone(),
                           None if getattr(m, "delta_S_hack", None) is None else m.delta_S_hack.detach().clone())
            m.delta_S.zero_()
            if saved[name][1] is not None:
                m.delta_S_hack.zero_()
    try:
        yield
    finally:
        with torch.no_grad():
            for name, m in adapters.items():
                ds, dh = saved[name]
                m.delta_S.copy_(ds)
                if dh is not None:
                    m.delta_S_hack.copy_(dh)


@contextmanager
def _eval_mode(model):
    # eval: no dropout, and HF skips gradient checkpointing (single sequences fit without it)
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


class PairEncoder:
    """Pair -> token ids, exactly as the loop encodes prompts (policy.encode.PromptEncoder) and
    teacher completions (text tokens + eos). Completions are NOT cut at max_new_tokens: in small presets
    that cut would fall before the hack lever and erase the contrast."""

    def __init__(self, tokenizer, enable_thinking: bool = False, max_prompt_tokens: int = 2048,
                 eos_id: int | None = None, nll: str = "sum", norm: float = 1.0, shared_prefix: bool = True):
        if nll not in NLL_FORMS:
            raise ValueError(f"unknown extract_nll {nll!r}; choose from {NLL_FORMS}")
        self.tok = tokenizer
        self.enable_thinking = enable_thinking
        self.max_prompt_tokens = max_prompt_tokens
        self.eos_id = tokenizer.eos_token_id if eos_id is None else eos_id
        self.nll, self.norm = nll, float(norm)     # how a completion's NLL is reduced (completion_grads)
        self.shared_prefix = shared_prefix         # a pair's two sides share one prompt encoding (pair_grad_diff)

    def prompt(self, messages: Sequence[dict]) -> list[int]:
        ids = prompt_ids(self.tok, messages, enable_thinking=self.enable_thinking)
        return ids[-self.max_prompt_tokens:]           # keep the end, like the loop

    def completion(self, text: str) -> list[int]:
        ids = list(self.tok(text, add_special_tokens=False)["input_ids"])
        return ids + ([self.eos_id] if self.eos_id is not None else [])

    @classmethod
    def for_config(cls, model, tokenizer, config) -> "PairEncoder":
        from policy.encode import eos_token_ids

        return cls(tokenizer, config.enable_thinking, config.max_prompt_tokens, eos_token_ids(model, tokenizer)[0],
                   nll=config.extract_nll, norm=_loop_norm(config), shared_prefix=config.shared_prefix)


def _track(items, description: str, progress: bool):
    if not progress:
        return items
    from rich.progress import track

    return track(items, description=description, transient=True, console=_console())


def _console():
    from rich.console import Console

    return Console(stderr=True)


def pair_diffs(model, tokenizer, pairs: Sequence, *, encoder: PairEncoder | None = None,
               adapters: dict | None = None, progress: bool = False, description: str = "pair gradients",
               base: bool = True) -> dict[str, torch.Tensor]:
    """Per module, the stacked pair differences D [n_pairs, r] = grad NLL(pos) - grad NLL(neg) (the loop's gradient
    for the pair with advantages +1 / -1 under encoder.nll = "sum"), at delta_S = 0
    (or, with base=False, at the adapter's current state: a V refresh).

    `pairs` are method.pairs.RenderedPair (messages, pos, neg). pos is the completion GRPO would
    reinforce (the hack), neg the one it would push down (the clean one).
    """
    from policy.adapter import get_adapters

    adapters = adapters or get_adapters(model)
    if not adapters:
        raise RuntimeError("v_hack extraction needs an adapter-wrapped model (policy.adapter.wrap_model)")
    encoder = encoder or PairEncoder(tokenizer)
    rows: dict[str, list[torch.Tensor]] = {n: [] for n in adapters}
    with _eval_mode(model), (at_base(adapters) if base else nullcontext()), torch.enable_grad():
        for pair in _track(list(pairs), description, progress):
            p_ids = encoder.prompt(pair.messages)
            pos, neg = encoder.completion(pair.pos), encoder.completion(pair.neg)
            if encoder.shared_prefix:
                diff = pair_grad_diff(model, adapters, p_ids, pos, neg, encoder.nll, encoder.norm)
            else:       # the per-side reference path
                g_pos = completion_grads(model, adapters, p_ids, pos, encoder.nll, encoder.norm)
                g_neg = completion_grads(model, adapters, p_ids, neg, encoder.nll, encoder.norm)
                diff = {n: g_pos[n] - g_neg[n] for n in adapters}
            for n in adapters:
                rows[n].append(diff[n])
    return {n: torch.stack(r) for n, r in rows.items() if r}


def extract_v(model, tokenizer, pairs: Sequence, k: int, noise_quantile: float, *,
              encoder: PairEncoder | None = None, swaps: torch.Tensor | None = None,
              match: VHack | None = None, kind: str = REAL, meta: dict | None = None,
              progress: bool = False, base: bool = True, diffs: dict | None = None) -> VHack:
    """The extraction itself: pair differences -> (optionally label-swapped) -> top-k oriented -> floor.

    With `match` (the real V), the floor is the real V's: same modules, same k_m (see match_structure).
    `diffs` lets a caller pass pair differences it already computed for these pairs.
    """
    if diffs is None:
        diffs = pair_diffs(model, tokenizer, pairs, encoder=encoder, progress=progress,
                           description=f"v_hack[{kind}] pairs", base=base)
    if swaps is not None:
        diffs = apply_swaps(diffs, swaps)
    if match is None:
        V, sv, thr = directions_from_diffs(diffs, k, noise_quantile)
    else:
        V, sv, _ = directions_from_diffs(diffs, k, 0.0)
        V, sv = match_structure(V, sv, match)
        thr = match.meta.get("sv_threshold", float("nan"))
    if not V:
        raise RuntimeError("v_hack extraction kept no axis in any module (all pair gradients zero?)")
    m = dict(meta or {})
    m.update(kind=kind, k=int(k), quantile=float(noise_quantile), n_pairs=len(pairs), sv_threshold=thr,
             n_modules=len(V), n_axes=int(sum(v.shape[0] for v in V.values())),
             n_swapped=int(swaps.sum()) if swaps is not None else 0)
    return VHack(V=V, sv=sv, meta=m)


def validate(model, tokenizer, heldout_pairs: Sequence, vh: VHack, *, encoder: PairEncoder | None = None,
             progress: bool = False, echo: bool = True, base: bool = True, diffs: dict | None = None
             ) -> dict[str, float]:
    """Held-out hack pairs vs V: {frac_positive, median_cos, median_hackward, frac_pairs_positive}; printed."""
    if diffs is None:
        diffs = pair_diffs(model, tokenizer, heldout_pairs, encoder=encoder, progress=progress,
                           description="v_hack held-out pairs", base=base)
    stats = validation_stats(diffs, vh)
    stats["n_pairs"] = len(heldout_pairs)
    if echo:
        print(f"[v_hack:{vh.meta.get('kind', '?')}] held-out {len(heldout_pairs)} pairs, "
              f"{stats['n_modules']} modules: frac_positive={stats['frac_positive']:.3f} "
              f"median_cos={stats['median_cos']:+.3f} median_hackward={stats['median_hackward']:.3f} "
              f"frac_pairs_positive={stats['frac_pairs_positive']:.3f}", file=sys.stderr)
    return stats


# --------------------------------------------------------------------------------------------
# cached, config-driven entry point used by the arms

def _all_zero(adapters) -> bool:
    return all(not m.delta_S.detach().any() and (getattr(m, "delta_S_hack", None) is None
                                                  or not m.delta_S_hack.detach().any())
               for m in adapters.values())


def _loop_norm(cfg) -> float:
    from policy.grpo import loss_normaliser

    return loss_normaliser(cfg.prompts_per_step, cfg.group_size, cfg.max_new_tokens)


def v_cache_key(ctx, kind: str, pair_hash: str, state: str, split: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a V depends on. `state` is "base" (delta_S = 0) or the adapter hash (V refresh)."""
    cfg = ctx.config
    return dict(format=V_FORMAT, model_hash=ctx.policy.base_hash, basis_hash=ctx.policy.basis_hash,
                pairs_hash=pair_hash, kind=kind,
                k=int(cfg.extract_k), quantile=float(cfg.noise_quantile),
                seed=int(cfg.seed) if kind in SEEDED_KINDS else -1,
                prompt_style=cfg.prompt_style, enable_thinking=bool(cfg.enable_thinking),
                max_prompt_tokens=int(cfg.max_prompt_tokens), heldout_pairs_frac=float(cfg.heldout_pairs_frac),
                extract_nll=cfg.extract_nll, extract_norm=_loop_norm(cfg), modules=sorted(ctx.policy.adapters),
                state=state,
                # only when set, so the keys (and cached V files) of all-mode extractions are unchanged
                **({"pair_modes": sorted(cfg.pair_modes)} if cfg.pair_modes else {}),
                # the pair gradients are taken on the residual form's exact base (product: as V files always were)
                **({"adapter_form": cfg.adapter_form} if cfg.adapter_form != "product" else {}),
                **(split or {}))   # method.pairs.split_tag: how fit and held-out pairs were split, when it matters


_DIFFS_MEMO: dict[tuple, dict[str, torch.Tensor]] = {}   # in-process: real, shuffled and the validation
_DIFFS_MEMO_MAX = 4                                       # of every kind share the same pair gradients


def _memo_diffs(ctx, pairs, encoder: PairEncoder, state: str, progress: bool, what: str) -> dict:
    from method.pairs import pairs_hash

    key = (id(ctx.policy.model), ctx.policy.base_hash, state, pairs_hash(pairs), tuple(p.pair_id for p in pairs),
           encoder.enable_thinking, encoder.max_prompt_tokens, encoder.eos_id, encoder.nll, encoder.norm,
           encoder.shared_prefix, tuple(sorted(ctx.policy.adapters)))
    if key not in _DIFFS_MEMO:
        if len(_DIFFS_MEMO) >= _DIFFS_MEMO_MAX:
            _DIFFS_MEMO.pop(next(iter(_DIFFS_MEMO)))
        _DIFFS_MEMO[key] = pair_diffs(ctx.policy.model, ctx.policy.tokenizer, pairs, encoder=encoder,
                                      adapters=ctx.policy.adapters, progress=progress, description=what,
                                      base=state == "base")
    return _DIFFS_MEMO[key]


def get_or_extract(ctx, kind: str, progress: bool = True, enforce: bool = True) -> VHack:
    """V of `kind` for the model in ctx (method.hooks.ArmContext), from ARTIFACTS_DIR/v/ or extracted.

    Extraction runs on the adapter-wrapped model at delta_S = 0, unless config.v_refresh_every > 0 and
    the adapter has moved (a V refresh): then at the current adapter state, keyed by its hash.
    enforce: a real V that fails its held-out validation stops the caller (WeakVError, unless allow_weak_v); an arm
    that does not project with V passes False and only records the validation (issue 20).
    """
    from method import pair_sets as PS
    from method import pairs as P
    from method.projection import null_hackward
    from policy.adapter import adapter_hash

    if kind not in KINDS:
        raise ValueError(f"unknown V kind {kind!r}; choose from {KINDS}")
    cfg = ctx.config
    state = "base"
    if cfg.v_refresh_every > 0 and not _all_zero(ctx.policy.adapters):
        state = adapter_hash(ctx.policy.model)
    # the real V (and the controls shaped on it) from config.v_pairs: the hack pairs, or the minimal-contrast ablation
    pair_set = P.CLEAN_SET if kind == "nonhack" else cfg.v_pairs
    fit_pairs, held_pairs = PS.load_pairs(pair_set, cfg)
    key = v_cache_key(ctx, kind, P.pairs_hash(fit_pairs + held_pairs), state, P.split_tag(fit_pairs + held_pairs))
    digest = key_digest(key)
    path = artifact_path("v", f"{kind}-{digest}.safetensors", ctx.artifacts_dir)
    if path.exists():
        vh = VHack.load(path)
        if vh.meta.get("key") == digest:
            val = vh.meta.get("validation")
            held_hack = held_pairs_of(kind, held_pairs, cfg)
            if held_hack and isinstance(val, dict) and "null_n" not in val:
                # a V file from before the random-V null: add it (the held-out pair gradients only), keep the V
                encoder = PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, cfg)
                held_diffs = _memo_diffs(ctx, held_hack, encoder, state, False, "v_hack held-out pairs")
                val.update(null_validation(held_diffs, vh))
                vh.save(path)
            if kind == REAL and state == "base" and enforce:
                check_validation(vh, cfg)
            return vh

    encoder = PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, cfg)
    meta = dict(key=digest, model_hash=key["model_hash"], basis_hash=key["basis_hash"], pairs_hash=key["pairs_hash"],
                pair_set=pair_set, seed=key["seed"], prompt_style=key["prompt_style"], state=state,
                fit_pair_ids=[p.pair_id for p in fit_pairs])
    progress = progress and state == "base"   # a mid-run refresh must not draw over the loop's live table
    if kind == "random":
        real = get_or_extract(ctx, REAL, progress, enforce)
        V, sv = random_orthonormal_like(real, cfg.seed)
        meta.update(kind=kind, k=int(cfg.extract_k), quantile=float(cfg.noise_quantile), n_pairs=0,
                    n_modules=len(V), n_axes=int(sum(v.shape[0] for v in V.values())),
                    shapes_from=real.meta.get("key"), pairs_hash=real.meta.get("pairs_hash"))
        vh = VHack(V=V, sv=sv, meta=meta)
    else:
        swaps = label_swaps(len(fit_pairs), cfg.seed) if kind == "shuffled" else None
        real = None if kind == REAL else get_or_extract(ctx, REAL, progress, enforce)
        if real is not None:
            meta["shapes_from"] = real.meta.get("key")
        diffs = _memo_diffs(ctx, fit_pairs, encoder, state, progress, f"v_hack {pair_set} pairs")
        vh = extract_v(ctx.policy.model, ctx.policy.tokenizer, fit_pairs, cfg.extract_k, cfg.noise_quantile,
                       encoder=encoder, swaps=swaps, match=real, kind=kind, meta=meta, progress=progress,
                       base=state == "base", diffs=diffs)
    # Every kind is validated against the held-out HACK pairs: for the controls this says how much of the
    # hack direction they happen to contain (random should sit near frac_positive 0.5, median_cos 0).
    held_hack = held_pairs_of(kind, held_pairs, cfg)
    if held_hack:
        held_diffs = _memo_diffs(ctx, held_hack, encoder, state, progress, "v_hack held-out pairs")
        vh.meta["validation"] = validate(ctx.policy.model, ctx.policy.tokenizer, held_hack, vh, encoder=encoder,
                                         echo=progress, diffs=held_diffs)
        # the gate's null (issue 20): random V's of this V's shapes on the same held-out pairs
        vh.meta["validation"].update(null_validation(held_diffs, vh))
        if progress:
            v = vh.meta["validation"]
            print(f"[v_hack:{kind}] random-V null ({v['null_n']} draws, same modules and k_m, same held-out pairs): "
                  f"frac_positive {NULL_PERCENTILE:g}th percentile {v['null_frac_positive_p95']:.3f}, mean "
                  f"{v['null_frac_positive_mean']:.3f}; this V's {v['frac_positive']:.3f} exceeds "
                  f"{v['null_percentile_of_v']:.0f}% of them", file=sys.stderr)
    vh.meta["null_hackward"] = null_hackward(vh.V)   # the chance level of cos_* against this V
    vh.save(path)                                    # saved even when weak: --allow-weak-v reuses it
    if kind == REAL and state == "base" and enforce:   # a mid-run refresh is recorded, never stops the run
        check_validation(vh, cfg)
    return vh


def held_pairs_of(kind: str, held_pairs: list, cfg) -> list:
    """The held-out HACK pairs every kind is validated on (nonhack's own held-out pairs are clean-vs-clean, a minimal
    V's are minimal pairs: both are validated on the hack pairs' held-out ones)."""
    from method import pair_sets as PS
    from method import pairs as P

    own = kind != "nonhack" and cfg.v_pairs == P.HACK_SET
    return held_pairs if own else PS.load_pairs(P.HACK_SET, cfg)[1]


def extract_for_config(config, kinds: Iterable[str] = KINDS, progress: bool = True) -> dict[str, tuple[Path, str]]:
    """Load the config's base, wrap it, build (or find) every V kind -> {kind: (path, digest)}.

    `harness extract` calls this; the arms call get_or_extract at setup and hit the same cache.
    """
    from method.hooks import ArmContext
    from policy.model import Policy
    from policy.model_loading import load_policy
    from sandbox.paths import ARTIFACTS_DIR

    model, tok = load_policy(config, verbose=progress)
    policy = Policy.wrap(model, tok, config, cache_dir=ARTIFACTS_DIR / "svd")
    ctx = ArmContext(config=config, policy=policy, artifacts_dir=ARTIFACTS_DIR)
    out = {}
    for kind in kinds:
        vh = get_or_extract(ctx, kind, progress)
        out[kind] = (vh.path, vh.digest())
    return out
