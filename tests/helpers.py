"""Helpers that several test modules use, kept once here (fixtures live in conftest.py).

Import them by name (``from helpers import load_pickle``): pytest puts this folder on the path.
Only what is not imported at module level here costs its users nothing (torch, the sampler).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from skelact.data.dataset import SkeletonSet


def load_pickle(path: Path) -> Any:
    """The object in a pickle file, loaded as-is (no safe_load: the tests wrote it)."""
    with open(path, "rb") as f:
        return pickle.load(f)


def dead_pid() -> int:
    """The id of a process that has exited: whose temporaries count as stale."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def cpu_and_cuda_batches(
    data: SkeletonSet, clip_len: int, seed: int, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``data`` through ``ClipSampler(clip_len, **options)`` on the CPU and on CUDA, with
    the same draws; asserts the CUDA batch is on CUDA and within 1e-5 of the CPU one.

    Returns ``(cpu, cuda)``, the CUDA batch moved back to the CPU, for the caller's own checks.
    """
    from skelact.data.transforms import ClipSampler

    on_cpu = ClipSampler(clip_len, **options)
    on_cuda = ClipSampler(clip_len, **options, device="cuda")
    idx = np.arange(len(data))
    draws = on_cpu.draw(data.lengths, np.random.default_rng(seed))
    cpu = on_cpu.apply(data, idx, draws)
    gpu = on_cuda.apply(data.to("cuda"), idx, draws)
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), rtol=1e-5, atol=1e-5)
    return cpu, gpu.cpu()


def rig_yaml(name: str = "rig5", extra: tuple[tuple[str, str], ...] = ()) -> str:
    """A user layout file's text: chest (the centre) with head, pelvis and a pair of hands, and
    ``extra`` ``(joint, parent)`` bones after them; the only left/right pair is the hands."""
    joints = ["chest", "head", "pelvis", "l_hand", "r_hand", *(j for j, _ in extra)]
    bones = [("head", "chest"), ("pelvis", "chest"), ("l_hand", "chest"), ("r_hand", "chest")]
    lines = [f"name: {name}", f"joints: [{', '.join(joints)}]", "center: chest", "bones:"]
    lines += [f"  - [{joint}, {parent}]" for joint, parent in (*bones, *extra)]
    return "\n".join([*lines, "left_right: [[l_hand, r_hand]]", ""])


def pyskl_fill(keys_shapes: list[tuple[str, tuple[int, ...]]], seed: int) -> dict[str, Any]:
    """The weights the PYSKL reference logits in ``tests/data/pyskl/`` were computed with.

    One draw per state-dict key, in PYSKL's key order, from NumPy's legacy ``RandomState``
    (whose streams NumPy keeps frozen), so the fixture needs no weight file: BatchNorm
    statistics positive and near 1, adjacencies in [0, 1/V), weights ~ N(0, 1/fan_in), norm
    weights in [0.5, 1.5), biases and other vectors ~ N(0, 0.1).
    """
    import torch

    rs = np.random.RandomState(seed)
    out: dict[str, Any] = {}
    for key, shape in keys_shapes:
        last = key.rsplit(".", 1)[-1]
        if last == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.long)
            continue
        if last == "running_var":
            values = rs.uniform(0.5, 1.5, shape)
        elif last == "running_mean":
            values = rs.normal(0.0, 0.1, shape)
        elif last == "A":
            values = rs.uniform(0.0, 1.0, shape) / shape[-1]
        elif len(shape) >= 2:
            values = rs.normal(0.0, 1.0, shape) / np.sqrt(np.prod(shape[1:]))
        elif last == "weight":
            values = rs.uniform(0.5, 1.5, shape)
        else:
            values = rs.normal(0.0, 0.1, shape)
        out[key] = torch.from_numpy(np.asarray(values, dtype=np.float32).reshape(shape))
    return out


# ---- tiny synthetic pickles for the engine tests ------------------------------------------
# Each class moves one joint along its own axis at its own frequency on top of a noisy rest
# pose, so a small CNN separates the classes within a few epochs on CPU. Body 0 is centred on
# its spine-middle joint in every frame, like the pickles of ``skelact preprocess`` (raw 3-D
# coordinates are refused by the loader).


def make_samples(num: int, num_classes: int, seed: int, frames=(48, 90)) -> list[dict]:
    from skelact.layouts import NTU25

    spine_mid = NTU25.index("spine_mid")
    rng = np.random.default_rng(seed)
    rest = np.random.default_rng(1234).normal(0, 0.3, (25, 3)).astype(np.float32)
    out = []
    for i in range(num):
        label = i % num_classes
        t = int(rng.integers(frames[0], frames[1] + 1))
        kp = np.zeros((2, t, 25, 3), dtype=np.float32)
        time = np.linspace(0, 1, t, dtype=np.float32)
        body = rest[None] + rng.normal(0, 0.05, (t, 25, 3)).astype(np.float32)
        joint = (3 * label + 4) % 25
        axis = label % 3
        body[:, joint, axis] += 1.0 + 0.8 * np.sin(2 * np.pi * (1 + label % 4) * time)
        body[:, (joint + 7) % 25, (axis + 1) % 3] += 2.0 * (label / max(num_classes - 1, 1))
        kp[0] = body - body[:, spine_mid : spine_mid + 1]  # centred per frame, as preprocess does
        out.append(
            {
                "frame_dir": f"S001C001P{i + 1:03d}R001A{label + 1:03d}",
                "label": label,
                "total_frames": t,
                "keypoint": kp,
                "img_shape": (1080, 1920),
                "original_shape": (1080, 1920),
            }
        )
    return out


def make_pickles(
    root: Path, num_train: int = 48, num_val: int = 24, num_classes: int = 4, seed: int = 0
) -> tuple[Path, Path]:
    """``root/xsub/train.pkl`` and ``val.pkl`` in the MMAction2 0.x layout."""
    folder = Path(root) / "xsub"
    folder.mkdir(parents=True, exist_ok=True)
    train = folder / "train.pkl"
    val = folder / "val.pkl"
    with open(train, "wb") as fh:
        pickle.dump(make_samples(num_train, num_classes, seed), fh)
    with open(val, "wb") as fh:
        pickle.dump(make_samples(num_val, num_classes, seed + 1), fh)
    return train, val
