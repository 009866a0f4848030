"""Hand-made run directories for the harness tests (no training)."""
from __future__ import annotations

import json
from pathlib import Path

from harness.rundir import SUMMARY_FILE, run_dir, write_json_atomic, write_summary


def make_run(root: Path, arm: str, seed: int, hack: float, pass_: float, *, preset: str = "smoke",
             complete: bool = True, steps: int = 3, curve: bool = True, **extra) -> Path:
    """A finished (or, with complete=False, unfinished) run: summary.json + a short metrics.jsonl."""
    rd = run_dir(root, preset, arm, seed)
    rd.mkdir(parents=True, exist_ok=True)
    summary = dict(arm=arm, seed=seed, preset=preset, complete=True, steps=steps, hack_rate=hack,
                   pass_rate=pass_, kl=0.01, mean_cos=0.1, frac_fired=0.5, grad_norm=1.0, wall_s=1.0,
                   hashes=dict(model="m", data="d", pool="p", v="v"))
    summary.update(extra)
    if curve:
        with open(rd / "metrics.jsonl", "w") as f:
            for step in range(steps):
                f.write(json.dumps({"step": step + 1, "hack_rate_s": hack * step / max(steps - 1, 1),
                                    "gt_pass_s": pass_}) + "\n")
    if complete:
        write_summary(rd, summary)
    else:
        write_json_atomic(rd / SUMMARY_FILE, {**summary, "complete": False})
    return rd


def make_arm(root: Path, arm: str, hacks: list[float], passes: list[float] | float, *,
             seeds: tuple[int, ...] = (41, 42, 43), preset: str = "smoke") -> None:
    """One arm over seeds; rates as fractions."""
    if not isinstance(passes, list):
        passes = [passes] * len(hacks)
    for seed, h, p in zip(seeds, hacks, passes):
        make_run(root, arm, seed, h, p, preset=preset)
