"""Atomic checkpoints: adapter tensors + optimizer state (safetensors), RNG states, step, metrics so far.

    checkpoints/step_00000025/
        adapter.safetensors     every trainable parameter, by parameter name
        optimizer.safetensors   AdamW state tensors as "<param name>/<key>"
        rng.safetensors         torch CPU (+ CUDA) generator states
        arm.safetensors         optional arm state (arm.state_dict(), when the arm has one)
        state.json              step, config hash, param_groups, python/numpy RNG, metrics rows so far

Written into a hidden temp dir and renamed into place, so a directory named step_* is always complete;
the last `keep` are kept. A crash mid-write leaves only a .tmp-* dir, which is ignored and cleaned.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

_STEP_DIR = re.compile(r"^step_(\d{8})$")
KEEP = 2


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def _np_rng_state():
    try:
        import numpy as np
    except ImportError:
        return None
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_np_rng_state(st) -> None:
    if st is None:
        return
    import numpy as np

    np.random.set_state((st[0], np.array(st[1], dtype=np.uint32), st[2], st[3], st[4]))


def _rng_tensors() -> dict[str, torch.Tensor]:
    t = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            t[f"torch_cuda_{i}"] = s
    return t


def trainable_named(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _optimizer_tensors(optimizer, names: dict[int, str]) -> tuple[dict[str, torch.Tensor], list[dict]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    id_to_name = {}
    # state_dict indexes params by position over param_groups; map positions to parameter names
    pos = 0
    for g in optimizer.param_groups:
        for p in g["params"]:
            id_to_name[pos] = names[id(p)]
            pos += 1
    for idx, st in sd["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"{id_to_name[idx]}/{k}"] = t.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def save_checkpoint(ckpt_root: Path, step: int, model, optimizer, state: dict[str, Any], arm=None,
                    keep: int = KEEP) -> Path:
    """Write checkpoint `step` atomically; returns its directory. `state` must be JSON-serialisable."""
    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-step_{step:08d}-", dir=ckpt_root))
    try:
        params = trainable_named(model)
        save_file({n: p.detach().cpu().contiguous() for n, p in params.items()}, str(tmp / "adapter.safetensors"))
        names = {id(p): n for n, p in params.items()}
        opt_t, groups = _optimizer_tensors(optimizer, names)
        save_file(opt_t, str(tmp / "optimizer.safetensors"))
        save_file(_rng_tensors(), str(tmp / "rng.safetensors"))
        arm_sd = arm.state_dict() if arm is not None and hasattr(arm, "state_dict") else None
        if arm_sd:
            save_file({k: v.detach().cpu().contiguous() for k, v in arm_sd.items()}, str(tmp / "arm.safetensors"))
        full_state = dict(state, step=step, param_groups=groups, python_rng=_py_rng_state(),
                          numpy_rng=_np_rng_state())
        with open(tmp / "state.json", "w") as f:
            json.dump(full_state, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():            # re-saving a step after a resume: replace it
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(ckpt_root)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


def _py_rng_state():
    v, internal, gauss = random.getstate()
    return [v, list(internal), gauss]


def list_checkpoints(ckpt_root: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first (state not loaded)."""
    ckpt_root = Path(ckpt_root)
    if not ckpt_root.is_dir():
        return []
    out = []
    for d in ckpt_root.iterdir():
        m = _STEP_DIR.match(d.name)
        if m and d.is_dir() and (d / "state.json").exists():
            out.append(Checkpoint(d, int(m.group(1)), {}))
    return sorted(out, key=lambda c: c.step)


def latest_checkpoint(ckpt_root: Path) -> Checkpoint | None:
    """The newest readable checkpoint (a corrupt newest one falls back to the one before)."""
    for c in reversed(list_checkpoints(ckpt_root)):
        try:
            c.state = json.loads((c.path / "state.json").read_text())
            return c
        except (OSError, json.JSONDecodeError):
            continue
    return None


def load_checkpoint(ckpt: Checkpoint, model, optimizer, arm=None) -> dict[str, Any]:
    """Restore adapter tensors, optimizer state, RNG states (and arm state); returns state.json's dict."""
    state = ckpt.state or json.loads((ckpt.path / "state.json").read_text())
    params = trainable_named(model)
    saved = load_file(str(ckpt.path / "adapter.safetensors"))
    if set(saved) != set(params):
        raise ValueError(f"checkpoint {ckpt.path} holds parameters {sorted(set(saved) ^ set(params))[:4]} "
                         "that do not match this model's trainable parameters")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(saved[n].to(p.device, p.dtype))
    opt_t = load_file(str(ckpt.path / "optimizer.safetensors"))
    order = [p for g in optimizer.param_groups for p in g["params"]]
    names = {id(p): n for n, p in params.items()}
    opt_state: dict[int, dict[str, Any]] = {}
    for idx, p in enumerate(order):
        prefix = names[id(p)] + "/"
        st = {k[len(prefix):]: v.to(p.device) for k, v in opt_t.items() if k.startswith(prefix)}
        if st:
            if "step" in st:
                st["step"] = st["step"].cpu()      # AdamW keeps `step` on CPU unless capturable
            opt_state[idx] = st
    optimizer.load_state_dict({"state": opt_state, "param_groups": state["param_groups"]})
    rng = load_file(str(ckpt.path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("torch_cuda_"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    v, internal, gauss = state["python_rng"]
    random.setstate((v, tuple(internal), gauss))
    _set_np_rng_state(state.get("numpy_rng"))
    if arm is not None and hasattr(arm, "load_state_dict") and (ckpt.path / "arm.safetensors").exists():
        arm.load_state_dict(load_file(str(ckpt.path / "arm.safetensors")))
    return state
