"""Which contrastive pairs a problem set uses, loaded and split: the pairs written on LeetCode ids (method.pairs),
or a problem set's own renderer (mini: method.mini_pairs)."""
from __future__ import annotations

from method import pairs as P     # P.PAIRS etc. read at call time (tests swap in small pair lists)
from method.pairs import CLEAN_SET, HACK_SET, MINIMAL_SET, PAIR_SETS, RenderedPair, render_all, split_pairs
from sandbox.loopholes import MODES


def _mini_pairs(pair_set: str, problems, style: str) -> list[RenderedPair]:
    from method.mini_pairs import render_pairs

    return render_pairs(pair_set, problems, style)


# problem set -> its own pairs, (pair_set, the problems pairs may use, prompt style) -> every rendered pair.
# Problem sets not listed use method.pairs' PAIRS / CLEAN_PAIRS / MINIMAL_PAIRS (written on LeetCode test-split ids).
RENDERERS = {"mini": _mini_pairs}


def load_pairs(pair_set: str, config) -> tuple[list[RenderedPair], list[RenderedPair]]:
    """(fit, heldout) rendered pairs of `pair_set` for a TrainConfig: only the problems its problem set lets pairs
    use (sandbox.data.ProblemSet.pairs_on), prompts in config.prompt_style, split by config.heldout_pairs_frac."""
    from sandbox.data import load_problem_set

    if pair_set not in PAIR_SETS:
        raise ValueError(f"unknown pair set {pair_set!r}; choose from {PAIR_SETS}")
    train = load_problem_set(config.problem_set).pairs
    modes = set(config.pair_modes or MODES)   # leave-one-mode-out: the known modes only
    if config.problem_set in RENDERERS:   # a problem set with pairs of its own
        own = [rp for rp in RENDERERS[config.problem_set](pair_set, train, config.prompt_style) if rp.mode in modes]
        return split_pairs(own, config.heldout_pairs_frac)
    train_ids = {p.id for p in train}
    pairs = [p for p in {HACK_SET: P.PAIRS, CLEAN_SET: P.CLEAN_PAIRS, MINIMAL_SET: P.MINIMAL_PAIRS}[pair_set]
             if p.problem_id in train_ids and p.mode in modes]
    if len(pairs) < 8:
        raise ValueError(f"only {len(pairs)} {pair_set} pairs fall on the problems problem set "
                         f"{config.problem_set!r} lets pairs use; need at least 8")
    fit, held = split_pairs(pairs, config.heldout_pairs_frac)
    return render_all(fit, train, config.prompt_style), render_all(held, train, config.prompt_style)
