"""One step of the `full` preset's own code path on CPU, asserting what would break on a GPU.

The model is Qwen3-4B's architecture shrunk to 2 layers (policy.qwen3_local), saved with save_pretrained and
loaded by path through the same from_pretrained call the hub id takes; bf16 weights, gradient checkpointing,
the Qwen3 chat template with thinking disabled, and the real loader on a train-split fixture (benchmark schema,
pinned by its git blob id like the real file). Only the scale is overridden.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch


@pytest.fixture
def full_data(tmp_path, monkeypatch):
    """A 6-problem train split (benchmark schema, new ids) pinned by blob id, beside the real test split."""
    import sandbox.data as D

    shared = tmp_path / "shared"
    shared.mkdir()
    test = D.ensure_data(("test",))["test"]
    shutil.copy(test, shared / test.name)
    rows = [json.loads(line) for line in test.read_text().splitlines()[:6]]
    for r in rows:
        r["id"] += 100_000            # the train split holds other problems than the test split
    train = shared / D.DATA_FILES["train"].filename
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(D, "SHARED_DATA_DIR", shared)
    monkeypatch.setattr(D, "DATA_DIR", tmp_path / "cache")
    monkeypatch.setitem(D.DATA_FILES, "train", D.DataFile("train", train.name, D.git_blob_id(train)))
    return {r["id"] for r in rows}


@pytest.mark.slow
def test_one_full_step_on_cpu(tmp_path, monkeypatch, full_data):
    from harness.presets import resolve_config
    import harness.train.loop as L
    from policy.adapter import get_adapters
    from policy.qwen3_local import NO_THINK_SUFFIX, THINK_OPEN, save_local_qwen3
    import sandbox.artifacts as A
    from sandbox.backends import make_executor
    from sandbox.grader import Grader

    model_dir = save_local_qwen3(tmp_path / "qwen3-4b-shrunk", shrink=True)
    for mod in (L, A):   # the loop's own paths and the one artifact cache (base, SVD basis, V, pool)
        monkeypatch.setattr(mod, "ARTIFACTS_DIR", tmp_path / "artifacts")
    cfg = resolve_config("full", "erase", 41, dict(   # scale only: the code path is full's
        model=str(model_dir), dtype="bfloat16",        # full's "auto" = bf16 on a GPU; forced here on CPU
        prompts_per_step=2, group_size=4, max_new_tokens=8, eval_problems=2, eval_samples=1,
        sandbox="process", grade_workers=1, steps=1))
    assert cfg.problem_set == "leetcode" and cfg.grad_checkpointing and not cfg.enable_thinking and cfg.shared_prefix

    run = L._Run(cfg, tmp_path / "run", progress=False)
    model = run.policy.model
    assert model.load_info.path == str(model_dir) and model.dtype == torch.bfloat16
    assert model.is_activation_checkpointing
    assert {p.id for p in run.train_problems} <= full_data and run.train_problems       # the train split trains
    assert run.eval_set and all(p.id < 100_000 for p in run.eval_set)                   # the test split evaluates

    # the prompt: Qwen3's template with thinking disabled (an empty, closed think block; nothing left to think)
    text = run.policy.tokenizer.decode(run.policy.encoder(run.train_problems[0]))
    assert text.endswith(NO_THINK_SUFFIX) and text.count(THINK_OPEN) == 1

    # spies: merged weights during generation, forwards' logits, dtypes the projection sees
    merged_dtypes, forwards, hook_dtypes = [], [], []
    real_generate = L.generate

    def spy_generate(m, *a, **k):
        merged_dtypes.extend((mod._merged, mod.weight.dtype, mod.U.dtype) for mod in get_adapters(m).values())
        return real_generate(m, *a, **k)
    monkeypatch.setattr(L, "generate", spy_generate)

    def on_forward(_mod, _args, kwargs, out):
        if kwargs.get("use_cache") is False:            # the loss / reference forwards
            cache = kwargs.get("cache", kwargs.get("past_key_values"))      # the shared prompt's keys/values
            prefix = cache.get_seq_length() if cache is not None else 0
            forwards.append((prefix + kwargs["input_ids"].shape[1], kwargs["logits_to_keep"], out.logits.shape[1],
                             prefix))
    handle = model.register_forward_hook(on_forward, with_kwargs=True)
    real_hook = run.arm.grad_hook

    def spy_hook(bundle):
        for name, mod in bundle.modules.items():
            hook_dtypes.append((mod.delta_S.dtype, mod.delta_S.grad.dtype, bundle.g_s[name].dtype,
                                bundle.g_t[name].dtype))
        return real_hook(bundle)
    monkeypatch.setattr(run.arm, "grad_hook", spy_hook)
    # random weights earn no reward: give every group an advantage spread so the backward really runs
    monkeypatch.setattr(L, "is_flat", lambda r: False)
    monkeypatch.setattr(L, "group_advantages", lambda r, *_: torch.linspace(-1.0, 1.0, len(r)))

    with make_executor("process", workers=1) as ex:
        row = run.step(0, Grader(ex))
    handle.remove()

    assert merged_dtypes and all(m and w == torch.bfloat16 and u == torch.bfloat16 for m, w, u in merged_dtypes)
    prompt_lens = {len(ids) for ids in run.policy.encoder._cache.values()}
    assert forwards
    for total, keep, got, prefix in forwards:
        # shared_prefix: every loss forward ran on the encoded prompt (all of it but its last token)
        assert prefix > 0 and prefix + 1 in prompt_lens
        if torch.is_tensor(keep):   # packed rows (sdpa): logits only at the positions that have a target
            assert got == keep.numel() <= total - prefix and keep.unique().numel() == keep.numel()
        else:                       # padded rows: logits on completion positions (+ the last prompt token)
            assert got == keep < total and prefix == total - keep
    assert hook_dtypes and all(d == (torch.float32,) * 4 for d in hook_dtypes)
    assert all(m.delta_S.dtype == torch.float32 for m in get_adapters(model).values())
    assert row["grad_norm"] is not None and torch.isfinite(torch.tensor(row["loss"]))
    assert any(m.delta_S.abs().max() > 0 for m in get_adapters(model).values())       # the step moved delta_S


def test_evaluation_samples_at_the_eval_temperature(tmp_path, monkeypatch):
    """full evaluates like the benchmark (10 samples at T 0.7) while training samples at T 1.0."""
    from types import SimpleNamespace

    from harness.presets import resolve_config
    import harness.train.evaluate as E
    from policy.adapter import wrap_model
    from policy.encode import PromptEncoder
    from policy.model_loading import load_policy

    full = resolve_config("full", "vanilla", 41)
    assert (full.eval_samples, full.eval_temperature, full.temperature, full.eval_problems) == (10, 0.7, 1.0, 0)
    cfg = resolve_config("smoke", "vanilla", 41, {"eval_temperature": 0.3, "eval_samples": 2, "max_new_tokens": 4})
    model, tok = load_policy(cfg, verbose=False)
    wrap_model(model, cfg.target_modules, cache_dir=tmp_path / "svd")
    seen = []
    real = E.generate

    def spy(m, t, prompts, n, c, **k):
        seen.append((n, c.temperature, c.top_k))
        return real(m, t, prompts, n, c, **k)
    monkeypatch.setattr(E, "generate", spy)
    probs = [SimpleNamespace(id=i, mode="run_tests") for i in range(2)]
    enc = PromptEncoder(tok, cfg)
    enc._cache = {p.id: [5 + p.id, 6, 7] for p in probs}

    class Grader:
        def grade_many(self, jobs):
            return [SimpleNamespace(exploited=False, gt_correct=False, attempted=False, defines_check=False,
                                    category="wrong") for _ in jobs]
    out = E.evaluate(model, tok, probs, Grader(), cfg, enc, seed=0)
    assert seen == [(2, 0.3, cfg.top_k)] and out["eval_n"] == 4 and cfg.temperature == 1.0
