"""The per-machine layout autotune: cached per CPU, invisible to the model and the RNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from skelact.layouts import NTU25
from skelact.models import build_model
from skelact.models.tuning import LAYOUTS, cache_path, current_layout, machine_key
from skelact.models.tuning import tune_memory_format as tune

SHAPE = (2, 3, 64, NTU25.num_joints, 2)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SKELACT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "autotune.json"


def test_first_use_times_caches_and_leaves_model_and_rng_alone(_cache: Path) -> None:
    torch.manual_seed(0)
    model = build_model("hcnb").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    layout = tune(model, SHAPE)
    assert layout in LAYOUTS and current_layout(model) == layout
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # BN statistics included
    assert all(p.grad is None for p in model.parameters())
    assert cache_path() == _cache
    assert json.loads(_cache.read_text()) == {machine_key("hcnb", SHAPE): layout}


def test_cached_choice_is_reused_and_deterministic_mode_keeps_the_build_layout(
    _cache: Path,
) -> None:
    _cache.parent.mkdir(parents=True)
    _cache.write_text(json.dumps({machine_key("tacnn", SHAPE): "nchw"}))
    model = build_model("tacnn")
    assert current_layout(model) == "channels_last"  # the build default
    assert tune(model, SHAPE, deterministic=True) == "channels_last"
    assert current_layout(model) == "channels_last"
    assert tune(model, SHAPE) == "nchw"  # from the cache, no timing
    assert current_layout(model) == "nchw"


def test_damaged_cache_is_retuned(_cache: Path) -> None:
    _cache.parent.mkdir(parents=True)
    _cache.write_text("{not json")
    assert tune(build_model("hcnb"), SHAPE) in LAYOUTS
    assert machine_key("hcnb", SHAPE) in json.loads(_cache.read_text())


def test_keep_training_memory_applies_once_on_glibc():
    """Training's process setting (no page faults per step) applies on glibc Linux, once."""
    import platform
    import sys

    from skelact.models.tuning import keep_training_memory

    applied = keep_training_memory()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied is True
    assert keep_training_memory() is applied  # idempotent


def test_an_instruction_set_cap_is_another_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run with oneDNN / MKL capped (e.g. to AVX2 on an AVX-512 CPU) tunes for itself."""
    for name in ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        monkeypatch.delenv(name, raising=False)
    native = machine_key("hcn", SHAPE)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = machine_key("hcn", SHAPE)
    assert capped != native and "ONEDNN_MAX_CPU_ISA=AVX2" in capped
