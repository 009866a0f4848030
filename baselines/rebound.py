"""Rebound (Wu & Tang 2026): an advantage-level concept penalty, the H3 comparison arm.

One concept direction in the residual stream at a single layer, at 60-75% of the depth (the spec's band;
rebound_layer_frac picks within it) unless config.rebound_layer names the block explicitly:

    v_concept = mean_pairs h(hack) - mean_pairs h(clean)          # [d], h = mean over completion tokens

from the same contrastive pairs (extraction split) as v_hack, at the base model. Per rollout, with h its
mean-over-completion residual stream captured by the loop in the loss forward it already does,

    reward <- reward - alpha * max(0, cos(h, v_concept))          # before advantages

so a rollout that looks hack-like is paid less and GRPO's advantages push away from it. Deliberately a
different direction from v_hack: H3 compares the mechanism (advantage vs gradient), not the extraction.
The grad hook only measures (cos_pre etc. against the real V) so every arm reports the same diagnostics.
"""
from __future__ import annotations

import hashlib
import json
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from method.hooks import Arm, ArmContext, GradBundle, UpdateBundle
from method.metrics import Metric, register_metric
from policy.config import ConfigError
from sandbox.artifacts import artifact_path, key_digest, write_atomic

CONCEPT_FORMAT = "rh-rebound-concept-v1"
DEPTH_BAND = (0.60, 0.75)   # spec: the concept layer sits at 60-75% of the depth (block output depth (i+1)/n)

for _m in [
    Metric("rebound_penalty", "Rebound: mean penalty alpha*relu(cos(h, v_concept)) subtracted from rewards",
           kind="projection", live=True),
    Metric("rebound_cos", "Rebound: mean cos(h, v_concept) over the step's rollouts", "{:+.3f}", kind="projection"),
    Metric("rebound_frac_pen", "Rebound: fraction of rollouts with a non-zero penalty", "{:.2f}", kind="projection"),
]:
    register_metric(_m)


def depth_fraction(layer: int, n_layers: int) -> float:
    """Depth of block `layer`'s output (0-based block; its output is hidden_states[layer + 1])."""
    return (layer + 1) / n_layers


def rebound_layer(n_layers: int, frac: float, explicit: int = -1) -> int:
    """0-based decoder block whose OUTPUT is the residual stream used (policy.forward.capture_residual
    convention: block i's output == hidden_states[i + 1]).

    explicit >= 0: that block, whatever its depth (checked against n_layers). Else the block whose depth
    (i+1)/n lies in DEPTH_BAND and is closest to frac: 0.67 of 36 blocks -> block 24 (1-based). A model with
    no block in the band (e.g. 2 blocks: depths 0.5, 1.0) is an error, not a silent off-spec choice."""
    if explicit >= 0:
        if explicit >= n_layers:
            raise ConfigError(f"rebound_layer={explicit} but the model has {n_layers} decoder blocks (0-based index)")
        return int(explicit)
    lo, hi = DEPTH_BAND
    inside = [i for i in range(n_layers) if lo - 1e-9 <= depth_fraction(i, n_layers) <= hi + 1e-9]
    if not inside:
        raise ConfigError(f"Rebound: no decoder block of this {n_layers}-block model sits at {lo:.0%}-{hi:.0%} depth "
                          f"(depths {', '.join(f'{depth_fraction(i, n_layers):.2f}' for i in range(n_layers))}); "
                          "set rebound_layer=<0-based block> explicitly (--set rebound_layer=N)")
    return min(inside, key=lambda i: (abs(depth_fraction(i, n_layers) - frac), i))


def rebound_penalty(acts: torch.Tensor, v_concept: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """acts [G, d], v_concept [d] -> (penalty [G] = alpha * relu(cos), cos [G]); fp32."""
    a = acts.float()
    v = v_concept.to(device=a.device, dtype=torch.float32)
    cos = F.cosine_similarity(a, v.unsqueeze(0).expand_as(a), dim=-1, eps=1e-8)
    return alpha * torch.relu(cos), cos


# --------------------------------------------------------------------------------------------
# the concept direction

@torch.no_grad()
def completion_means(model, encoder, pairs, layer: int, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean residual stream over completion tokens at `layer`, for each pair's pos and neg -> ([n, d], [n, d])."""
    from method.extract import _eval_mode, _track
    from policy.forward import capture_residual, completion_logprobs, make_batch

    device = next(model.parameters()).device
    pos, neg = [], []
    with _eval_mode(model):
        for pair in _track(list(pairs), "rebound concept pairs", progress):
            p_ids = encoder.prompt(pair.messages)
            if encoder.shared_prefix:      # both sides in one batch on one prompt encoding
                b = make_batch(p_ids, [encoder.completion(pair.pos), encoder.completion(pair.neg)], 0, device)
                _, acts = completion_logprobs(model, b, capture_layer=layer, shared_prefix=True)   # [2, d]
                pos.append(acts[0].cpu())
                neg.append(acts[1].cpu())
                continue
            for text, bucket in ((pair.pos, pos), (pair.neg, neg)):
                ids = p_ids + encoder.completion(text)
                with capture_residual(model, layer) as box:
                    model(input_ids=torch.tensor([ids], device=device), logits_to_keep=1, use_cache=False)
                bucket.append(box["h"][0, len(p_ids):].float().mean(0).cpu())   # [d]
    return torch.stack(pos), torch.stack(neg)


def concept_direction(h_pos: torch.Tensor, h_neg: torch.Tensor) -> torch.Tensor:
    """Mean difference [d] (not normalised: the penalty uses a cosine)."""
    return h_pos.float().mean(0) - h_neg.float().mean(0)


def concept_validation(h_pos: torch.Tensor, h_neg: torch.Tensor, v: torch.Tensor) -> dict[str, float]:
    """On held-out pairs: how often the hack side scores higher than its clean twin, and the mean cos gap."""
    c_pos = F.cosine_similarity(h_pos.float(), v.unsqueeze(0), dim=-1)
    c_neg = F.cosine_similarity(h_neg.float(), v.unsqueeze(0), dim=-1)
    return dict(frac_pair_separated=float((c_pos > c_neg).float().mean()),
                mean_cos_hack=float(c_pos.mean()), mean_cos_clean=float(c_neg.mean()))


def get_or_extract_concept(ctx: ArmContext, layer: int, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """v_concept [d] at `layer` for the model in ctx, cached under ARTIFACTS_DIR/rebound/ -> (v, meta)."""
    from method import pair_sets as PS
    from method import pairs as P
    from method.extract import PairEncoder

    cfg = ctx.config
    fit, held = PS.load_pairs(P.HACK_SET, cfg)
    key = dict(format=CONCEPT_FORMAT, model_hash=ctx.policy.base_hash, pairs_hash=P.pairs_hash(fit + held), layer=layer,
               prompt_style=cfg.prompt_style, enable_thinking=bool(cfg.enable_thinking),
               max_prompt_tokens=int(cfg.max_prompt_tokens), heldout_pairs_frac=float(cfg.heldout_pairs_frac),
               **P.split_tag(fit + held),
               # activations on the residual form's exact base (product: as concept files always were)
               **({"adapter_form": cfg.adapter_form} if cfg.adapter_form != "product" else {}))
    digest = key_digest(key)
    path = artifact_path("rebound", f"concept-{digest}.safetensors", ctx.artifacts_dir)
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor("v_concept"), json.loads((f.metadata() or {}).get("meta", "{}"))

    encoder = PairEncoder.for_config(ctx.policy.model, ctx.policy.tokenizer, cfg)
    with ctx.policy.base():                      # the base model, as for v_hack
        h_pos, h_neg = completion_means(ctx.policy.model, encoder, fit, layer, progress)
        v = concept_direction(h_pos, h_neg)
        meta = dict(key, digest=digest, n_pairs=len(fit))
        if held:
            hp, hn = completion_means(ctx.policy.model, encoder, held, layer, progress)
            meta["validation"] = concept_validation(hp, hn, v)
            if progress:
                print(f"[rebound] layer {layer}: held-out {len(held)} pairs, "
                      + " ".join(f"{k}={val:.3f}" for k, val in meta["validation"].items()), file=sys.stderr)
    write_atomic(path, lambda tmp: save_file({"v_concept": v.contiguous()}, str(tmp),
                                             metadata={"format": CONCEPT_FORMAT, "meta": json.dumps(meta)}))
    return v, meta


# --------------------------------------------------------------------------------------------
# the arm

class ReboundArm(Arm):
    def __init__(self, alpha: float = 0.5, layer_frac: float = 0.67, v_source=None, concept_source=None,
                 layer: int = -1):
        from method.arm import REAL, ProjectionArm

        self.alpha = float(alpha)
        self.layer_frac = float(layer_frac)
        self.layer = int(layer)                                            # -1: from layer_frac, in DEPTH_BAND
        self.measure = ProjectionArm(REAL, "measure", v_source=v_source)   # cos_* diagnostics only
        self._concept_source = concept_source or get_or_extract_concept
        self.activation_layer = None                                      # set in setup (needs the depth)

    def setup(self, ctx: ArmContext) -> None:
        from policy.model_loading import decoder_layers

        super().setup(ctx)
        self.n_layers = len(decoder_layers(ctx.policy.model))
        self.activation_layer = rebound_layer(self.n_layers, self.layer_frac, self.layer)
        v, meta = self._concept_source(ctx, self.activation_layer)
        self.v_concept = v.float()
        self.concept_meta = meta
        self.measure.setup(ctx)

    def reward_hook(self, rewards: torch.Tensor, acts: torch.Tensor | None,
                    info=None) -> tuple[torch.Tensor, dict[str, float]]:
        if acts is None:
            raise RuntimeError("Rebound needs the loop to capture activations at arm.activation_layer")
        if acts.shape[0] != rewards.shape[0]:
            raise ValueError(f"acts {tuple(acts.shape)} do not match rewards {tuple(rewards.shape)}")
        pen, cos = rebound_penalty(acts, self.v_concept, self.alpha)
        new = rewards.float() - pen.to(rewards.device)
        return new, dict(rebound_penalty=float(pen.mean()), rebound_cos=float(cos.mean()),
                         rebound_frac_pen=float((pen > 0).float().mean()))

    def grad_hook(self, grads: GradBundle) -> dict[str, float]:
        return self.measure.grad_hook(grads)

    def update_hook(self, update: UpdateBundle) -> dict[str, float]:
        return self.measure.update_hook(update)

    def summary(self) -> dict:
        return self.measure.summary()

    def resolved(self) -> dict:
        """config.json: the layer used and its achieved depth (in the spec's band unless set explicitly)."""
        depth = depth_fraction(self.activation_layer, self.n_layers)
        lo, hi = DEPTH_BAND
        return {**self.measure.resolved(), "rebound_layer": self.activation_layer, "rebound_n_layers": self.n_layers,
                "rebound_depth_frac": depth, "rebound_layer_explicit": self.layer >= 0,
                "rebound_depth_in_band": lo - 1e-9 <= depth <= hi + 1e-9}

    def artifact_hashes(self) -> dict[str, str]:
        h = dict(self.measure.artifact_hashes())
        t = self.v_concept.detach().float().cpu().contiguous()
        h["rebound_concept"] = hashlib.sha256(t.numpy().tobytes()).hexdigest()[:16]
        return h


def build(config) -> ReboundArm:
    return ReboundArm(alpha=config.rebound_alpha, layer_frac=config.rebound_layer_frac, layer=config.rebound_layer)
