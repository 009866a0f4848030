"""Issue 20 item 8: route's delta_S_hack in its own AdamW parameter group (route_hack_lr); the default is today's."""
from __future__ import annotations

import hashlib
import json

import torch

from harness.presets import resolve_config
from policy import adapter as A
from policy.config import HASH_OMITTED_AT_DEFAULT
from tests.test_method_projection import TARGETS, tiny_model


def test_defaults_keep_every_config_hash_and_setting_them_changes_the_hash():
    cfg = resolve_config("full", "route", 41)                                # full keeps every late field at its default
    for field, default in HASH_OMITTED_AT_DEFAULT.items():
        assert getattr(cfg, field) == default, field
    before = {k: v for k, v in cfg.to_dict().items() if k not in HASH_OMITTED_AT_DEFAULT}   # the config as it was
    blob = json.dumps(before, sort_keys=True, default=list).encode()
    assert cfg.config_hash() == hashlib.sha256(blob).hexdigest()[:16]
    for override in ({"route_hack_lr": 1e-3}, {"v_pairs": "minimal"}, {"advantage_baseline": "students"},
                     {"pool_hard_canonical": False}):
        assert resolve_config("full", "route", 41, override).config_hash() != cfg.config_hash(), override


def _route_model(tmp_path):
    model = tiny_model()
    adapters = A.wrap_model(model, TARGETS, cache_dir=tmp_path, route=True)
    return model, adapters, A.adapter_parameters(model)


def test_default_is_one_group_as_before(tmp_path):
    _, adapters, params = _route_model(tmp_path)
    groups = A.optimizer_param_groups(params, adapters, 3e-2)
    assert groups == params                                                  # exactly what AdamW got before
    assert len(torch.optim.AdamW(groups, lr=3e-2).param_groups) == 1


def test_hack_group_gets_its_own_lr_and_keeps_the_schedule_ratio(tmp_path):
    _, adapters, params = _route_model(tmp_path)
    opt = torch.optim.AdamW(A.optimizer_param_groups(params, adapters, 3e-2, 1e-3), lr=3e-2)
    main, hack = opt.param_groups
    hack_ids = {id(m.delta_S_hack) for m in adapters.values()}
    assert {id(p) for p in hack["params"]} == hack_ids and not ({id(p) for p in main["params"]} & hack_ids)
    assert hack["lr"] == 1e-3 and main["lr"] == 3e-2
    for pg in opt.param_groups:                      # the loop's schedule: lr_t * lr_scale
        pg["lr"] = 1.5e-2 * pg.get("lr_scale", 1.0)
    assert main["lr"] == 1.5e-2 and abs(hack["lr"] - 5e-4) < 1e-15
    # one Adam step moves delta_S_hack by about its own lr, delta_S by about lr (Adam: |step| ~ lr per coordinate)
    for p in params:
        p.grad = torch.full_like(p, 1e-6)            # tiny gradients, as route's in-span part is
    opt.step()
    m = next(iter(adapters.values()))
    assert abs(m.delta_S_hack.detach().abs().max().item() - 5e-4) < 5e-5
    assert abs(m.delta_S.detach().abs().max().item() - 1.5e-2) < 1.5e-3
