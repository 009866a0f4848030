"""policy.model.Policy: the wrapped model, what names it, and its views (base, merged)."""
from __future__ import annotations

import copy

import torch

from policy import adapter as A
from policy.config import TrainConfig
from policy.model import Policy
from tests.test_method_adapter import TARGETS, tiny_model


def test_policy_names_its_base_and_basis_and_patches_nothing_onto_the_model(tmp_path):
    base = tiny_model(seed=0)
    before = A.model_hash(base)
    names = set(vars(base))
    policy = Policy.wrap(copy.deepcopy(base), None, TrainConfig(target_modules=TARGETS, adapter_form="product"),
                         cache_dir=tmp_path)
    assert policy.base_hash == before == A.model_hash(policy.model)      # the wrapped model names its base
    assert policy.basis_hash == A.basis_hash(policy.model) and len(policy.basis_hash) == 16
    assert set(policy.adapters) == set(A.get_adapters(policy.model)) and policy.adapters
    assert not [k for k in set(vars(policy.model)) - names if k.startswith("_rh")]   # no state patched on the model
    again = Policy.wrap(copy.deepcopy(base), None, TrainConfig(target_modules=TARGETS, adapter_form="product"),
                        cache_dir=tmp_path)
    assert again.basis_hash == policy.basis_hash                          # the cached factors: the same basis


def test_base_view_is_the_base_model_and_merged_weights_give_the_same_forward(tmp_path):
    base = tiny_model(seed=1)
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        want = base(ids).logits
    policy = Policy.wrap(copy.deepcopy(base), None, TrainConfig(target_modules=TARGETS, adapter_form="residual"),
                         cache_dir=tmp_path)
    with torch.no_grad():
        for m in policy.adapters.values():
            m.delta_S.add_(0.1)
        moved = policy.model(ids).logits
        with policy.base():
            at_base = policy.model(ids).logits
        with policy.merged():
            dense = policy.model(ids).logits
    assert torch.allclose(at_base, want, atol=1e-5) and not torch.allclose(moved, want, atol=1e-3)
    assert torch.allclose(dense, moved, atol=1e-4)
