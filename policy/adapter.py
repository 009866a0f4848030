"""AntiPaSTO-style full-rank SVD adapter (lora-lite `antipasto`, rotation off).

Every target nn.Linear W [d_out, d_in] is replaced by its SVD, W = U diag(S) Vh, with
U [d_out, r], S [r], Vh [r, d_in] frozen (r = min(d_in, d_out), so nothing is truncated)
and one trainable vector delta_S [r]:

    y = ((x Vh^T) * (S + delta_S)) U^T + b            # factored: training forward/backward

so dL/d delta_S = sum_t (x_t Vh^T) * (dL/dy_t U) lives in the fixed SVD basis of W, the frame
in which v_hack is extracted and gradients are projected.

Two forms of the same adapter (TrainConfig.adapter_form), with the same delta_S and the same gradient formula:

    product   y = ((x Vh^T) * (S + delta_S)) U^T + b               W rebuilt from its factors
    residual  y = x W^T + ((x Vh^T) * delta_S) U^T + b             the original W kept beside the factors

In bf16 the product form's W = U diag(S) Vh is a reconstruction, one rounding step per weight away from the
original (measured on a random-init Qwen3-4B: logit KL 1.5e-3 nats per token at delta_S = 0, REPRODUCE §1);
the residual form at delta_S = 0 IS the original layer, bit for bit, at the price of one more dense matmul in
the training forward and one more dense copy of W. In fp32 (smoke, mini) the two agree to rounding.

The route arm adds a second delta_S_hack [r] to the same diagonal; it is zeroed for held-out evaluation.

Generation should not pay for two skinny matmuls per layer, and between optimizer steps the
delta is constant, so `merged(model)` switches every adapter to one dense weight
U diag(S + delta) Vh (residual: W + U diag(delta) Vh, from the kept copy of W), written into the original
weight's storage and rebuilt only when the effective delta differs from the one last merged.

Dtypes: SVD always in fp32; U, Vh (and the dense weight) kept in the model dtype (bf16 on GPU);
S and the deltas stay fp32 (they are tiny and Adam's updates are small relative to them). The factored
forward applies the scale in fp32 and rounds the scaled activations once: rounding S + delta itself to
bf16 would snap it back to S for |delta| < ulp(S)/2 (0.016 at S = 4), so every token would see no change.
The merged weight is computed in fp32 and rounded once; in bf16 a small delta still moves W by less than
its ulp, so generation sees it only statistically (see merge_gap in method.metrics, REPRODUCE.md).
"""
from __future__ import annotations

import hashlib
import json
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from policy.determinism import pinned_threads
from sandbox.artifacts import write_atomic

ADAPTER_FORMAT = "rh-svd-adapter-v1"


class SVDLinear(nn.Module):
    """Drop-in replacement for nn.Linear with a trainable singular-value offset."""

    def __init__(self, base: nn.Linear, U: torch.Tensor, S: torch.Tensor, Vh: torch.Tensor, route: bool = False,
                 residual: bool = False):
        super().__init__()
        W = base.weight
        self.in_features, self.out_features = base.in_features, base.out_features
        r = S.shape[0]
        assert U.shape == (self.out_features, r) and Vh.shape == (r, self.in_features), "SVD shapes do not match W"
        dev, dt = W.device, W.dtype
        # Frozen factors. Non-persistent: they are a deterministic function of the base
        # weights (and cached on disk), so the model's state_dict stays small.
        self.register_buffer("U", U.to(dev, dt).contiguous(), persistent=False)          # [d_out, r]
        self.register_buffer("S", S.to(dev, torch.float32).contiguous(), persistent=False)  # [r]
        self.register_buffer("Vh", Vh.to(dev, dt).contiguous(), persistent=False)        # [r, d_in]
        # Storage for the dense merged weight; starts as the original W and is reused.
        self.register_buffer("weight", W.detach(), persistent=False)                     # [d_out, d_in]
        # residual form: the original W, untouched by merges (the merged weight gets storage of its own)
        self.register_buffer("base_weight", W.detach().clone() if residual else None, persistent=False)
        bias = base.bias.detach() if base.bias is not None else None
        self.register_buffer("bias", bias, persistent=False)
        self.delta_S = nn.Parameter(torch.zeros(r, device=dev, dtype=torch.float32))
        self.delta_S_hack = nn.Parameter(torch.zeros(r, device=dev, dtype=torch.float32)) if route else None
        # Mode flags, set only through the context managers below.
        self._merged = False
        self._disabled = False
        self._hack_off = False
        self._merged_delta: torch.Tensor | None = None  # effective delta the dense weight holds
        self.merge_count = 0                             # how many times the dense weight was rebuilt

    @property
    def residual(self) -> bool:
        return self.base_weight is not None

    @property
    def rank(self) -> int:
        return self.S.shape[0]

    def effective_delta(self) -> torch.Tensor:
        """The offset the forward currently applies, [r] fp32 (keeps the autograd graph)."""
        if self._disabled:
            return torch.zeros_like(self.delta_S)
        d = self.delta_S
        if self.delta_S_hack is not None and not self._hack_off:
            d = d + self.delta_S_hack
        return d

    @torch.no_grad()
    def sync_merged(self) -> bool:
        """Rebuild the dense weight if the effective delta changed since the last merge. Returns True if rebuilt."""
        eff = self.effective_delta().detach()
        if self._merged_delta is not None and torch.equal(eff, self._merged_delta):
            return False
        # U diag(S + delta) Vh (residual: W + U diag(delta) Vh) in fp32, then stored in the model dtype.
        if self.residual:
            W = self.base_weight.float() + (self.U.float() * eff) @ self.Vh.float()  # [d_out, d_in]; exact at 0
        else:
            W = (self.U.float() * (self.S + eff)) @ self.Vh.float()  # [d_out, d_in]
        self.weight.copy_(W)
        self._merged_delta = eff.clone()
        self.merge_count += 1
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._merged:
            if torch.is_grad_enabled() and self.delta_S.requires_grad:
                raise RuntimeError("merged weights carry no gradient to delta_S; compute losses outside merged()")
            return F.linear(x, self.weight, self.bias)
        h = F.linear(x, self.Vh)                               # [..., r]
        if self.residual:     # the original layer plus the offset's part, which is exactly 0 at delta = 0
            h = (h.float() * self.effective_delta()).to(x.dtype)
            return F.linear(x, self.base_weight, self.bias) + F.linear(h, self.U)
        # scale each singular direction in fp32, round once (a bf16 S + delta would lose |delta| ~ 1e-3)
        h = (h.float() * (self.S.float() + self.effective_delta())).to(x.dtype)
        return F.linear(h, self.U, self.bias)                  # [..., d_out]

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, r={self.rank}, "
                f"route={self.delta_S_hack is not None}, residual={self.residual}")


# --------------------------------------------------------------------------------------------
# hashing

def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().to("cpu").contiguous().reshape(-1)
    return memoryview(t.view(torch.uint8).numpy())


def _config_blob(model: nn.Module) -> bytes:
    cfg = getattr(model, "config", None)
    d = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else {}
    for k in ("_name_or_path", "transformers_version", "_commit_hash"):  # where/when, not what
        d.pop(k, None)
    return json.dumps(d, sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class Wrapped:
    """What wrap_model recorded about a model it wrapped (kept beside the model, not patched onto it)."""
    base_hash: str              # model_hash of the base before wrapping
    basis_hash: str             # digest of the SVD factors the adapters use
    svd_cache: str | None       # the SVD factor file read / written (None: computed in memory)


_WRAPPED: "weakref.WeakKeyDictionary[nn.Module, Wrapped]" = weakref.WeakKeyDictionary()


def model_hash(model: nn.Module) -> str:
    """sha256 (16 hex) over the config and every parameter's name, shape, dtype and bytes.

    A wrapped model reports the hash of the base it was wrapped from (recorded at wrap time),
    so SVD caches, V files and summaries all name the same base whatever the adapter holds.
    """
    wrapped = _WRAPPED.get(model)
    if wrapped is not None:
        return wrapped.base_hash
    h = hashlib.sha256(_config_blob(model))
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        h.update(f"{name}|{tuple(p.shape)}|{p.dtype}".encode())
        h.update(_tensor_bytes(p))
    return h.hexdigest()[:16]


def basis_hash(model: nn.Module) -> str:
    """Digest of the SVD factors the adapters use; V is only meaningful in this exact basis
    (an SVD recomputed elsewhere may flip signs), so V files should record it."""
    return _WRAPPED[model].basis_hash


def adapter_hash(model: nn.Module) -> str:
    """Digest of the current adapter state (all deltas), e.g. to key a refreshed V."""
    h = hashlib.sha256()
    for name, m in sorted(get_adapters(model).items()):
        h.update(name.encode())
        h.update(_tensor_bytes(m.delta_S))
        if m.delta_S_hack is not None:
            h.update(_tensor_bytes(m.delta_S_hack))
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# wrapping

def _target_linears(model: nn.Module, target_modules) -> dict[str, nn.Linear]:
    targets = set(target_modules)
    return {name: m for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in targets}


def _default_cache_dir() -> Path:
    from sandbox.paths import ARTIFACTS_DIR
    return ARTIFACTS_DIR / "svd"


# LAPACK's SVD factors depend on its thread count (mini's base: other U / Vh bits at 1 and 2 threads), and the
# cache is keyed by the model alone, so whichever process computed it first (`harness extract` with the machine's
# threads, a sweep run with cpu_threads = 1) decided every later run's basis, and at mini's lr that float noise
# moves a run's end hack rate by pp. Pinned; 2 is what extract used on the 2-core machines of REPRODUCE §5.
SVD_CPU_THREADS = 2


def svd_threads():
    """SVD_CPU_THREADS intra-op threads for the block (CPU factorisations); restored afterwards."""
    return pinned_threads(SVD_CPU_THREADS)


def _svd_by_shape(weights: dict[str, torch.Tensor], batch: int = 16) -> dict[str, tuple]:
    """{name: (U, S, Vh)} in fp32, one batched torch.linalg.svd per chunk of same-shape matrices (a model has a
    handful of shapes: 252 matrices of Qwen3-4B are 5 shapes). On CPU the batched call gives bit-identical
    factors to one call per matrix (LAPACK runs per matrix), at SVD_CPU_THREADS whatever the caller's threads;
    on CUDA it amortises the solver's launch costs."""
    by_shape: dict[tuple, list[str]] = {}
    for name, W in weights.items():
        by_shape.setdefault((tuple(W.shape), W.device, W.dtype), []).append(name)
    out: dict[str, tuple] = {}
    with svd_threads():
        for names in by_shape.values():
            for i in range(0, len(names), batch):
                chunk = names[i:i + batch]
                U, S, Vh = torch.linalg.svd(torch.stack([weights[n].detach().float() for n in chunk]),
                                            full_matrices=False)          # [b, d_out, r], [b, r], [b, r, d_in]
                for j, n in enumerate(chunk):
                    out[n] = (U[j], S[j], Vh[j])
    return out


def _load_or_compute_svd(linears: dict[str, nn.Linear], cache_file: Path | None) -> dict[str, tuple]:
    """{name: (U, S, Vh)} from the on-disk cache; missing modules are computed and the cache rewritten
    (cache_file None: computed, nothing read or written)."""
    out: dict[str, tuple] = {}
    if cache_file is not None and cache_file.exists():
        with safe_open(str(cache_file), framework="pt") as f:
            keys = set(f.keys())
            for name, lin in linears.items():
                if f"{name}.S" in keys:
                    dev = lin.weight.device
                    out[name] = tuple(f.get_tensor(f"{name}.{k}").to(dev) for k in ("U", "S", "Vh"))
    missing = [n for n in linears if n not in out]
    for name, (U, S, Vh) in (_svd_by_shape({n: linears[n].weight for n in missing}) if missing else {}).items():
        dt = linears[name].weight.dtype
        out[name] = (U.to(dt), S, Vh.to(dt))  # stored in the model dtype, S in fp32
    if missing and cache_file is not None:
        tensors = {}
        for name, (U, S, Vh) in out.items():
            tensors[f"{name}.U"] = U.detach().cpu().contiguous()
            tensors[f"{name}.S"] = S.detach().cpu().float().contiguous()
            tensors[f"{name}.Vh"] = Vh.detach().cpu().contiguous()
        # atomic: concurrent runs never read a half-written cache
        write_atomic(cache_file, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "rh-svd-cache-v1"}))
    return out


def wrap_model(model: nn.Module, target_modules, cache_dir: str | Path | None = None,
               route: bool = False, write_cache: bool = True, residual: bool = False) -> dict[str, SVDLinear]:
    """Replace every target nn.Linear by an SVDLinear and freeze everything but the deltas.

    SVD factors are read from / written to <cache_dir or ARTIFACTS_DIR/svd>/<model_hash>.safetensors
    (write_cache=False: computed in memory, no file read or written; gpu-check's 9 GiB of Qwen3-4B factors).
    Each SVDLinear takes over its Linear's weight storage (merged() overwrites it), so do not keep
    using the unwrapped Linear objects. Returns {module name: SVDLinear}.
    """
    if get_adapters(model):
        raise RuntimeError("model is already wrapped")
    base_hash = model_hash(model)
    linears = _target_linears(model, target_modules)
    if not linears:
        raise ValueError(f"no nn.Linear named any of {tuple(target_modules)} in {type(model).__name__}")
    cache_file = Path(cache_dir or _default_cache_dir()) / f"{base_hash}.safetensors" if write_cache else None
    factors = _load_or_compute_svd(linears, cache_file)

    for p in model.parameters():
        p.requires_grad_(False)
    basis = hashlib.sha256()
    adapters: dict[str, SVDLinear] = {}
    for name, lin in linears.items():
        U, S, Vh = factors[name]
        mod = SVDLinear(lin, U, S, Vh, route=route, residual=residual)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, mod)
        adapters[name] = mod
        basis.update(name.encode())
        basis.update(_tensor_bytes(mod.S))
        basis.update(_tensor_bytes(mod.U[:, :4]))  # signs of the leading columns pin the basis orientation
    _WRAPPED[model] = Wrapped(base_hash, basis.hexdigest()[:16], str(cache_file) if cache_file is not None else None)
    return adapters


def get_adapters(model: nn.Module) -> dict[str, SVDLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SVDLinear)}


def adapter_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The trainable tensors, in a stable order (delta_S, then delta_S_hack where present)."""
    params = []
    for _, m in sorted(get_adapters(model).items()):
        params.append(m.delta_S)
        if m.delta_S_hack is not None:
            params.append(m.delta_S_hack)
    return params


def optimizer_param_groups(params: list[nn.Parameter], adapters: dict[str, "SVDLinear"], lr: float,
                           hack_lr: float = 0.0) -> list:
    """AdamW's parameter groups: `params` as one group (hack_lr 0: the behaviour before route_hack_lr), or route's
    delta_S_hack tensors in a second group at hack_lr. Each group's "lr_scale" is its lr / lr, which the loop's
    schedule multiplies in. Adam normalises a tiny in-span gradient into lr-sized steps, so delta_S_hack's lr, not
    the size of its gradient, sets how fast it moves."""
    if not hack_lr:
        return list(params)
    hack = {id(m.delta_S_hack) for m in adapters.values() if getattr(m, "delta_S_hack", None) is not None}
    return [{"params": [p for p in params if id(p) not in hack], "lr_scale": 1.0},
            {"params": [p for p in params if id(p) in hack], "lr": hack_lr, "lr_scale": hack_lr / lr}]


# --------------------------------------------------------------------------------------------
# modes

@contextmanager
def _flag(model: nn.Module, attr: str, value: bool):
    mods = list(get_adapters(model).values())
    old = [getattr(m, attr) for m in mods]
    try:
        for m in mods:
            setattr(m, attr, value)
            if m._merged:
                m.sync_merged()
        yield model
    finally:
        for m, o in zip(mods, old):
            setattr(m, attr, o)
            if m._merged:
                m.sync_merged()


@contextmanager
def merged(model: nn.Module):
    """Dense U diag(S + delta) Vh weights for generation (no grad). Rebuilt only if delta changed."""
    mods = list(get_adapters(model).values())
    old = [m._merged for m in mods]
    try:
        for m in mods:
            m.sync_merged()
            m._merged = True
        yield model
    finally:
        for m, o in zip(mods, old):
            m._merged = o


def adapter_disabled(model: nn.Module):
    """Forward with every delta = 0: the frozen base, i.e. the KL reference, without a second model."""
    return _flag(model, "_disabled", True)


def hack_ablated(model: nn.Module):
    """Forward with delta_S_hack = 0 (route arm evaluation); a no-op for adapters without it."""
    return _flag(model, "_hack_off", True)


# --------------------------------------------------------------------------------------------
# persistence

def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    state = {}
    for name, m in get_adapters(model).items():
        state[f"{name}.delta_S"] = m.delta_S.detach().cpu().contiguous()
        if m.delta_S_hack is not None:
            state[f"{name}.delta_S_hack"] = m.delta_S_hack.detach().cpu().contiguous()
    return state


def save_adapter(model: nn.Module, path: str | Path) -> Path:
    """Write the deltas to safetensors (atomically) with the base model hash in the metadata."""
    meta = {"format": ADAPTER_FORMAT, "model_hash": model_hash(model),
            "basis_hash": _WRAPPED[model].basis_hash if model in _WRAPPED else "", "form": _form(model)}
    state = adapter_state(model)
    return write_atomic(path, lambda tmp: save_file(state, str(tmp), metadata=meta))


def _form(model: nn.Module) -> str:
    return "residual" if any(m.residual for m in get_adapters(model).values()) else "product"


def load_adapter(model: nn.Module, path: str | Path) -> None:
    """Load deltas saved by save_adapter; refuses a file made for another base model or module set."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != ADAPTER_FORMAT:
        raise ValueError(f"{path}: not an adapter file (format={meta.get('format')!r})")
    if meta.get("model_hash") != model_hash(model):
        raise ValueError(f"{path}: adapter was saved for base model {meta.get('model_hash')}, "
                         f"this model is {model_hash(model)}")
    if meta.get("form", "product") != _form(model):    # files from before the residual form are product-form
        raise ValueError(f"{path}: adapter was trained in the {meta.get('form', 'product')} form, "
                         f"this model is wrapped in the {_form(model)} form")
    tensors = load_file(str(path))
    expected = adapter_state(model)
    if set(tensors) != set(expected):
        diff = sorted(set(tensors) ^ set(expected))[:5]
        raise ValueError(f"{path}: adapter tensors do not match the wrapped modules (e.g. {diff})")
    mods = get_adapters(model)
    with torch.no_grad():
        for key, t in tensors.items():
            name, _, attr = key.rpartition(".")
            getattr(mods[name], attr).copy_(t)
