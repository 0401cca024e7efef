"""The PyTorch side of deployment: a checkpoint as a `Backend` with the ONNX file's metadata.

Used by ``skelact stream --checkpoint`` and by the exporter, which records exactly this
`ModelInfo` in the ONNX file, so a checkpoint and its export are served identically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from skelact import __version__
from skelact.deploy.metadata import LAYOUT, DeployError, ModelInfo, check_layout

#: Own-checkpoint key of the class names, index order, for data that are not NTU's.
CLASS_NAMES_KEY = "class_names"


class TorchModel:
    """A checkpoint (own or SkelAct/MMAction2 with ``model=``) in eval mode on the CPU."""

    def __init__(self, checkpoint: str | Path, model: str | None = None) -> None:
        from skelact.engine.evaluate import sampling_for
        from skelact.models.checkpoint import build_from_loaded, read_checkpoint

        self.path = Path(checkpoint)
        raw = read_checkpoint(self.path)
        overrides: dict[str, Any] = {"name": model} if model is not None else {}
        self.net = build_from_loaded(raw, self.path, **overrides).eval()
        spec = getattr(self.net, "skelact_spec", {}) or {}
        options = spec.get("options") or {}
        name = str(spec.get("name") or model)
        clip_len = int(options["clip_len"])  # the network's input size: fixed by the checkpoint
        _, clip_ratio = sampling_for(name, raw, clip_len, None)
        layout = str(options["layout"])  # build_model resolves it (NTU's for older checkpoints)
        num_joints = int(options["num_joints"])
        check_layout(layout, num_joints, self.path)
        num_classes = int(options["num_classes"])
        self.info = ModelInfo(
            model=name,
            class_names=_class_names(raw, num_classes, layout, self.path),
            clip_len=clip_len,
            val_clip_ratio=float(clip_ratio),
            num_joints=num_joints,
            num_persons=int(options.get("num_persons", 2)),
            in_channels=int(options.get("in_channels", 3)),
            layout=layout,
            skelact_version=__version__,
        )

    def input_shape(self, batch: int) -> tuple[int, int, int, int, int]:
        i = self.info
        return (batch, i.in_channels, i.clip_len, i.num_joints, i.num_persons)

    @torch.no_grad()
    def logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self.net(x).float().numpy()


def _class_names(raw: dict, num_classes: int, layout: str, path: Path) -> tuple[str, ...]:
    """The checkpoint's recorded class names, else NTU's action names for an ``ntu25`` model,
    else ``class <i>``: NTU's names on another data set's classes would be silently wrong."""
    from skelact.engine.evaluate import class_names

    recorded = raw.get(CLASS_NAMES_KEY)
    if recorded is not None:
        if not isinstance(recorded, list | tuple) or len(recorded) != num_classes:
            raise DeployError(
                f"{path}: {CLASS_NAMES_KEY!r} must list {num_classes} names (one per class)"
            )
        return tuple(str(n) for n in recorded)
    if layout == LAYOUT:
        return tuple(class_names(num_classes))
    return tuple(f"class {i}" for i in range(num_classes))
