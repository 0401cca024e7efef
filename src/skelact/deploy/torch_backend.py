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
from skelact.data.streams import stream_features
from skelact.deploy.metadata import LAYOUT, DeployError, ModelInfo, check_layout
from skelact.models import built_layout

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
        net = build_from_loaded(raw, self.path, **overrides).eval()
        spec = getattr(net, "skelact_spec", {}) or {}
        options = spec.get("options") or {}
        name = str(spec.get("name") or model)
        clip_len = int(options["clip_len"])  # the network's input size: fixed by the checkpoint
        _, clip_ratio = sampling_for(name, raw, clip_len, None)
        layout = str(options["layout"])  # build_model resolves it (NTU's for older checkpoints)
        num_joints = int(options["num_joints"])
        check_layout(layout, num_joints, self.path)
        num_classes = int(options["num_classes"])
        train_cfg = raw.get("config") or {}
        stream = str(train_cfg.get("stream") or "joint")  # SkelAct/MMAction2 files: joints
        in_channels = int(options.get("in_channels", 3))
        dims = in_channels - (1 if train_cfg.get("with_score") else 0)
        self.net = WithStream(net, stream, built_layout(net).parents, dims).eval()
        self.info = ModelInfo(
            model=name,
            class_names=_class_names(raw, num_classes, layout, self.path),
            clip_len=clip_len,
            val_clip_ratio=float(clip_ratio),
            num_joints=num_joints,
            num_persons=int(options.get("num_persons", 2)),
            in_channels=in_channels,
            layout=layout,
            skelact_version=__version__,
            stream=stream,
        )

    def input_shape(self, batch: int) -> tuple[int, int, int, int, int]:
        i = self.info
        return (batch, i.in_channels, i.clip_len, i.num_joints, i.num_persons)

    @torch.no_grad()
    def logits(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self.net(x).float().numpy()


class WithStream(torch.nn.Module):
    """A model that takes joints and computes its own input stream first.

    Why: a model trained on bones or motion must be served the same features, and feature code
    in every deployment is where train/serve skew starts. Wrapped like this, the exported ONNX
    graph holds the few subtractions itself (:mod:`skelact.data.streams`, the very function
    training used), so any runtime feeds it the joints a pose estimator gives. For ``joint`` it
    is the model itself.
    """

    def __init__(self, net: torch.nn.Module, stream: str, parents: tuple[int, ...], dims: int):
        super().__init__()
        self.net, self.stream, self.dims = net, stream, int(dims)
        self.register_buffer("parents", torch.tensor(parents, dtype=torch.int64), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(stream_features(x, self.stream, self.parents, self.dims))


def _class_names(raw: dict, num_classes: int, layout: str, path: Path) -> tuple[str, ...]:
    """The checkpoint's recorded class names, else NTU's action names for an ``ntu25`` model,
    else ``class <i>``: NTU's names on another data set's classes would be silently wrong."""
    from skelact.engine.results import class_names

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
