"""The fast training step keeps the results: epoch-wide draws and plans, the optimizer's
implementation, ``drop_last``, and (where CUDA exists) TF32, bf16, compile and CUDA graphs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import make_pickles
from skelact.data.dataset import SkeletonSet
from skelact.data.transforms import ClipSampler
from skelact.engine import distributed as D
from skelact.engine.optim import build_optimizer, implementation, use_implementation
from skelact.engine.recipes import TrainConfig, resolve_config
from skelact.engine.safety import TrainingError
from skelact.engine.train import fp32_precision, plan_epoch, setup, train
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def ragged_set(num: int = 23, seed: int = 0) -> SkeletonSet:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 90, size=num)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    storage = rng.standard_normal((int(offsets[-1]), NUM_JOINTS, 2, 3)).astype(np.float32)
    labels = rng.integers(0, 5, size=num)
    return SkeletonSet.from_storage(storage, offsets, labels, [f"s{i}" for i in range(num)])


@pytest.mark.parametrize("rotate", [0.0, 0.1])
def test_epoch_draws_and_plan_equal_per_batch(rotate):
    """Drawing all batches before the epoch and slicing one plan gives, bit for bit, the batches
    of drawing and applying at each step (the stream of the seeded runs is kept)."""
    data = ragged_set()
    sampler = ClipSampler(24, train=True, rotate=rotate, min_len=16)
    batches = np.array_split(np.random.default_rng(1).permutation(len(data)), 4)
    step_rng, epoch_rng = np.random.default_rng([5, 1]), np.random.default_rng([5, 1])
    per_step = [sampler(data, idx, step_rng) for idx in batches]
    draws = sampler.draw_batches([data.lengths[idx] for idx in batches], epoch_rng)
    plan = sampler.plan(data, np.concatenate(batches), draws)
    start = 0
    for idx, expected in zip(batches, per_step, strict=True):
        got = sampler.gather(data, plan[start : start + len(idx)])
        start += len(idx)
        assert torch.equal(got, expected)
    assert step_rng.random() == epoch_rng.random()  # both generators consumed the same draws


def test_plan_checks_the_draws():
    data = ragged_set(4)
    sampler = ClipSampler(8, train=True)
    draws = sampler.draw(data.lengths, np.random.default_rng(0))
    draws.starts[0] = data.lengths[0]
    with pytest.raises(ValueError, match="crop out of range"):
        sampler.plan(data, np.arange(4), draws)


def small_model() -> torch.nn.Module:
    from skelact.models import build_model

    torch.manual_seed(0)
    return build_model("hcn", num_classes=5, clip_len=16, num_persons=2, num_joints=NUM_JOINTS,
                       in_channels=3)  # fmt: skip


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_foreach_update_is_bit_identical_on_cpu(optimizer):
    """The CPU update (foreach) equals torch's per-parameter loop bit for bit, so
    --deterministic CPU runs keep their results; with the recipe's decay multipliers."""
    cfg = resolve_config(TrainConfig(model="hcn", optimizer=optimizer))
    assert implementation(small_model()) == {"foreach": True}
    x = torch.randn(6, 3, 16, NUM_JOINTS, 2)
    y = torch.randint(0, 5, (6,))
    finals = []
    for foreach in (True, False):
        model = small_model()
        opt = build_optimizer(model, cfg, 1e-3)
        for group in opt.param_groups:
            group["foreach"] = foreach
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        finals.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*finals, strict=True))


def test_resume_uses_this_devices_update():
    """A checkpoint written by a fused (GPU) run resumes on the CPU with the CPU update."""
    cfg = resolve_config(TrainConfig(model="hcn"))
    model = small_model()
    opt = build_optimizer(model, cfg, 1e-3)
    state = copy.deepcopy(opt.state_dict())
    for group in state["param_groups"]:
        group.update(fused=True, foreach=None)
    opt.load_state_dict(state)
    assert all(g["fused"] for g in opt.param_groups)
    use_implementation(opt, model)
    assert all(g["foreach"] and not g["fused"] for g in opt.param_groups)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return make_pickles(tmp_path_factory.mktemp("data"), num_train=21, num_val=8)


def config(data, out: Path, **kw) -> TrainConfig:
    values = dict(
        model="tscnn", train_path=str(data[0]), val_path=str(data[1]), out_dir=str(out),
        epochs=2, batch_size=8, lr=3e-3, scale_lr=False, clip_len=16, val_interval=2,
        track=False, quiet=True, deterministic=True, seed=3, num_classes=4,
    )  # fmt: skip
    values.update(kw)
    return resolve_config(TrainConfig(**values))


def test_drop_last_keeps_the_first_batches(data, tmp_path):
    """drop_last: every step has the full batch; the batches it keeps are exactly those of a
    default run (same samples, same crops); the default trains on every sample."""
    env, device = D.init_distributed("cpu")
    for name in "ab":
        (tmp_path / name).mkdir()
    full = setup(config(data, tmp_path / "a"), env, device)
    static = setup(config(data, tmp_path / "b", drop_last=True), env, device)
    steps, plan, labels = plan_epoch(full, 1)
    kept, kept_plan, kept_labels = plan_epoch(static, 1)
    assert [len(s) for s in steps] == [8, 8, 5] and [len(s) for s in kept] == [8, 8]
    assert sum(map(len, steps)) == len(full.train_set)
    for i in range(16):
        assert int(plan.rows[i]) == int(kept_plan.rows[i]) and labels[i] == kept_labels[i]
    assert torch.equal(
        full.train_sampler.gather(full.train_set, plan[:16]),
        static.train_sampler.gather(static.train_set, kept_plan[:16]),
    )


@pytest.mark.parametrize("flag", ["cuda_graphs", "tf32"])
def test_cuda_options_refused_on_cpu(data, tmp_path, flag):
    with pytest.raises(TrainingError, match=f"{flag} needs a CUDA device"):
        train(config(data, tmp_path, device="cpu", **{flag: True}))


def test_fp32_precision_is_a_cuda_setting(data, tmp_path):
    before = torch.backends.cudnn.conv.fp32_precision
    with fp32_precision(config(data, tmp_path), torch.device("cpu")):
        assert torch.backends.cudnn.conv.fp32_precision == before


# ----------------------------------------------------------------------------- CUDA only


@needs_cuda
def test_cuda_plan_matches_cpu():
    data = ragged_set()
    sampler = ClipSampler(24, train=True, rotate=0.1, min_len=16, device="cuda")
    idx = np.arange(len(data))
    draws = sampler.draw(data.lengths, np.random.default_rng(0))
    on_gpu = data.to("cuda")
    plan = sampler.plan(on_gpu, idx, draws)
    assert plan.rows.is_cuda and plan.rot.is_cuda
    got = sampler.gather(on_gpu, plan).cpu()
    expected = ClipSampler(24, train=True, rotate=0.1, min_len=16).apply(data, idx, draws)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_cuda
def test_fused_update_on_cuda():
    assert implementation(small_model().cuda()) == {"fused": True}


@needs_cuda
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"tf32": True},
        {"amp": "bf16"},
        {"compile": True},
        {"cuda_graphs": True},
        {"cuda_graphs": True, "drop_last": True},
    ],
    ids=["eager", "tf32", "bf16", "compile", "cuda_graphs", "cuda_graphs_drop_last"],
)
def test_cuda_paths_train(data, tmp_path, options):
    """Each GPU option trains to finite losses; the fp32 options stay close to eager fp32."""
    result = train(config(data, tmp_path / "run", device="cuda", deterministic=False, **options))
    assert result.completed and np.isfinite(result.final_loss)
    if not options or options.get("amp"):
        return
    eager = train(config(data, tmp_path / "eager", device="cuda", deterministic=False,
                         drop_last=options.get("drop_last", False)))  # fmt: skip
    assert result.final_loss == pytest.approx(eager.final_loss, rel=5e-2)


@needs_cuda
def test_tf32_setting_applies_during_the_run_only(data, tmp_path):
    before = torch.backends.cuda.matmul.fp32_precision
    with fp32_precision(config(data, tmp_path, tf32=True, device="cuda"), torch.device("cuda")):
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    with fp32_precision(config(data, tmp_path, device="cuda"), torch.device("cuda")):
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == before
