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
from skelact.deploy.metadata import LAYOUT, DeployError, ModelInfo
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints


class TorchModel:
    """A checkpoint (own or SkelAct/MMAction2 with ``model=``) in eval mode on the CPU."""

    def __init__(self, checkpoint: str | Path, model: str | None = None) -> None:
        from skelact.engine.evaluate import class_names, sampling_for
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
        if int(options.get("num_joints", NUM_JOINTS)) != NUM_JOINTS:
            raise DeployError(
                f"{self.path}: model has {options['num_joints']} joints, layout {LAYOUT!r} has "
                f"{NUM_JOINTS}"
            )
        self.info = ModelInfo(
            model=name,
            class_names=tuple(class_names(int(options["num_classes"]))),
            clip_len=clip_len,
            val_clip_ratio=float(clip_ratio),
            num_joints=NUM_JOINTS,
            num_persons=int(options.get("num_persons", 2)),
            in_channels=int(options.get("in_channels", 3)),
            skelact_version=__version__,
        )

    def input_shape(self, batch: int) -> tuple[int, int, int, int, int]:
        i = self.info
        return (batch, i.in_channels, i.clip_len, i.num_joints, i.num_persons)

    @torch.no_grad()
    def logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self.net(x).float().numpy()
