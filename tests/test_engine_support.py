"""Tiny synthetic pickles for the engine tests (imported by the other test_engine/train files).

Each class moves one joint along its own axis at its own frequency on top of a noisy rest pose,
so a small CNN separates the classes within a few epochs on CPU. Body 0 is centred on its
spine-middle joint in every frame, like the pickles of ``skelact preprocess`` (raw 3-D
coordinates are refused by the loader).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from skelact.layouts import NTU25

SPINE_MID = NTU25.index("spine_mid")


def make_samples(num: int, num_classes: int, seed: int, frames=(48, 90)) -> list[dict]:
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
        kp[0] = body - body[:, SPINE_MID : SPINE_MID + 1]  # centred per frame, as preprocess does
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


def test_deterministic_kernels_set_aten_without_importing_inductor() -> None:
    """Eager training turns on deterministic kernels without the 1-2 s Inductor import; a run
    that compiles also sets Inductor's own flag (checked in a fresh interpreter)."""
    import subprocess
    import sys

    probe = (
        "import sys, torch\n"
        "from skelact.engine.determinism import deterministic_kernels\n"
        "deterministic_kernels(True)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert 'torch._inductor.config' not in sys.modules\n"
        "deterministic_kernels(True, compiling=True)\n"
        "import torch._inductor.config as c\n"
        "assert c.deterministic\n"
        "deterministic_kernels(False)\n"
        "assert not torch.are_deterministic_algorithms_enabled() and not c.deterministic\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
