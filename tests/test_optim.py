"""The optimizer and schedule the training loop builds: LR scaling, per-layer weight decay,
step schedule. The builders read attributes only, so a namespace stands in for the settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from skelact.engine.optim import build_optimizer, build_scheduler, effective_lr, param_groups
from skelact.engine.safety import TrainingError
from skelact.models import build_model


def settings(**kw) -> SimpleNamespace:
    values = dict(lr=1e-3, batch_size=64, base_batch_size=64, scale_lr=True, weight_decay=1e-4,
                  optimizer="adam", momentum=0.0, nesterov=False, decay_mult={},
                  lr_steps=[2, 3], lr_gamma=0.1, lr_schedule="step", epochs=4)  # fmt: skip
    return SimpleNamespace(**{**values, **kw})


def test_linear_lr_scaling_to_the_global_batch():
    assert effective_lr(settings(batch_size=16)) == pytest.approx(1e-3 * 16 / 64)
    assert effective_lr(settings(batch_size=16, scale_lr=False)) == 1e-3
    assert effective_lr(settings(batch_size=128, base_batch_size=128)) == 1e-3


@pytest.mark.parametrize(("name", "key"), [("tscnn", "backbone.fc5"), ("hcn", "backbone.fc7")])
def test_weight_decay_multiplier_hits_exactly_the_named_layer(name, key):
    model = build_model(name, num_classes=4)
    opt = build_optimizer(model, settings(decay_mult={key: 10.0}), 1e-3)
    assert isinstance(opt, torch.optim.Adam)  # classic L2 decay, not AdamW
    by_id = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            expect = 1e-3 if key in by_id[id(p)] else 1e-4
            assert group["weight_decay"] == pytest.approx(expect), by_id[id(p)]
    boosted = [by_id[id(p)] for g in opt.param_groups if g["decay_mult"] == 10 for p in g["params"]]
    assert boosted and all(key in n for n in boosted)


def test_unmatched_decay_key_is_an_error_naming_it():
    with pytest.raises(TrainingError, match=r"\['backbone.fc5'\] match no parameter"):
        param_groups(build_model("hcnb", num_classes=4), 1e-4, {"backbone.fc5": 10.0})


def test_sgd_nesterov_and_the_step_schedule():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, settings(optimizer="sgd", momentum=0.9, nesterov=True), 0.1)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"]
    sched = build_scheduler(opt, settings())
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.001])


def test_cosine_schedule_anneals_to_zero_over_the_epochs():
    model = torch.nn.Linear(2, 2)
    cfg = settings(optimizer="sgd", lr=0.1, lr_schedule="cosine", epochs=4)
    opt = build_optimizer(model, cfg, 0.1)
    sched = build_scheduler(opt, cfg)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0.1 * (1 - 2**-0.5) / 2])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
