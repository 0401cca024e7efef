"""What an exported ``model.onnx`` records about itself (ONNX ``metadata_props``).

Why: the file alone must be enough to serve the model -- which classes the outputs are, which
joint layout and clip length it expects, and how the training code sampled validation clips --
so that a deployment cannot silently feed it differently prepared skeletons. Values are strings
(an ONNX rule); lists are JSON. ``layout`` is the name of the joint layout the model was trained
on (a built-in such as ``ntu25`` or ``coco17``, or a user layout file's ``name``) and
``num_joints`` its joint count, both from the checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from skelact.errors import SkelactError
from skelact.layouts import BUILTIN_LAYOUTS, NTU25, get_layout

NUM_JOINTS = NTU25.num_joints
#: Coordinates per joint of the raw NTU input (Kinect 3-D, no score channel).
NTU_CHANNELS = 3

#: Bumped when keys change meaning; the runtime refuses files of another version.
METADATA_VERSION = "1"
#: The joint layout the raw NTU ``.skeleton`` reader and its pre-normalisation produce (and the
#: layout of models from before layouts were recorded).
LAYOUT = NTU25.name
INPUT_NAME = "skeleton"
OUTPUT_NAME = "logits"
PREFIX = "skelact."


class DeployError(SkelactError, ValueError):
    """A model file, export or stream input that cannot be used; the message says why.

    Also a ``ValueError`` so that callers that catch value errors of the older stages catch it.
    """


@dataclass(frozen=True)
class ModelInfo:
    """Everything needed to prepare an input for, and read the output of, an exported model."""

    model: str
    class_names: tuple[str, ...]
    clip_len: int
    val_clip_ratio: float
    num_joints: int = NUM_JOINTS
    num_persons: int = 2
    in_channels: int = 3
    layout: str = LAYOUT
    skelact_version: str = ""
    stream: str = "joint"  # computed inside the model from the joints it is given

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_props(self) -> dict[str, str]:
        values = {
            "metadata_version": METADATA_VERSION,
            "model": self.model,
            "class_names": json.dumps(list(self.class_names)),
            "num_classes": str(self.num_classes),
            "layout": self.layout,
            "num_joints": str(self.num_joints),
            "num_persons": str(self.num_persons),
            "in_channels": str(self.in_channels),
            "clip_len": str(self.clip_len),
            "val_clip_ratio": repr(float(self.val_clip_ratio)),
            "input": f"{INPUT_NAME}: N x C x T x V x M float32 joints",
            "stream": self.stream,
            "skelact_version": self.skelact_version,
        }
        return {PREFIX + k: v for k, v in values.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], path: str | Path) -> ModelInfo:
        """Parse and check the props of ``path``; a missing or bad key is a one-line error."""

        def get(key: str) -> str:
            value = props.get(PREFIX + key)
            if value is None:
                raise DeployError(
                    f"{path}: no '{PREFIX}{key}' in the ONNX metadata (not exported by "
                    f"'skelact export'?)"
                )
            return value

        version = get("metadata_version")
        if version != METADATA_VERSION:
            raise DeployError(
                f"{path}: metadata version {version!r}, this skelact reads {METADATA_VERSION!r}"
            )
        try:
            names = json.loads(get("class_names"))
            info = cls(
                model=get("model"),
                class_names=tuple(str(n) for n in names),
                clip_len=int(get("clip_len")),
                val_clip_ratio=float(get("val_clip_ratio")),
                num_joints=int(get("num_joints")),
                num_persons=int(get("num_persons")),
                in_channels=int(get("in_channels")),
                layout=get("layout"),
                skelact_version=get("skelact_version"),
                stream=props.get(PREFIX + "stream", "joint"),  # files before streams: joints
            )
            num_classes = int(get("num_classes"))
        except (ValueError, TypeError) as exc:
            raise DeployError(f"{path}: malformed skelact metadata ({exc})") from None
        if info.num_classes != num_classes:
            raise DeployError(f"{path}: {info.num_classes} class names for "
                              f"{get('num_classes')} classes")  # fmt: skip
        check_layout(info.layout, info.num_joints, path)
        return info


def check_layout(layout: str, num_joints: int, where: str | Path) -> None:
    """Refuse a joint count that contradicts a built-in layout's (the input cannot be prepared).

    A user layout's name says nothing this skelact can check, so only its count is recorded.
    """
    if layout in BUILTIN_LAYOUTS and get_layout(layout).num_joints != num_joints:
        raise DeployError(
            f"{where}: model expects layout {layout!r} with {num_joints} joints, but that layout "
            f"has {get_layout(layout).num_joints}"
        )


def require_ntu_input(layout: str, in_channels: int, where: str | Path) -> None:
    """Refuse a model (its ``layout`` and ``in_channels``) that raw NTU ``.skeleton`` input
    cannot feed.

    The raw readers and NTU's pre-normalisation produce 3-D ``ntu25`` skeletons only; another
    layout's model would get joints it was not trained on (or fail on the shape), so predicting
    or streaming NTU files with it is refused up front.
    """
    if layout != LAYOUT or in_channels != NTU_CHANNELS:
        raise DeployError(
            f"{where}: raw NTU .skeleton input is layout {LAYOUT!r} with {NTU_CHANNELS} "
            f"coordinates, but this model expects layout {layout!r} with {in_channels} input "
            "channels; give it skeletons of its own layout instead"
        )


def read_export_metrics(path: str | Path) -> dict | None:
    """The ``export.json`` of a run for the report, or None when the run was not exported."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DeployError(f"{path}: unreadable export metrics ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("parity_ppm"), (int, float)):
        raise DeployError(f"{path}: no numeric 'parity_ppm' in the export metrics")
    return {**data, "parity_rel_error": float(data["parity_ppm"]) / 1e6}


def export_summary(runs_root: str | Path, benchmark: str, model: str, seeds) -> dict | None:
    """For ``reports/results.md``: the worst parity error over the seeds' ``export.json``.

    ``{'parity_rel_error_max', 'onnx_mb', 'seeds'}`` over the seeds that were exported, or None
    when none was (the report then shows a dash).
    """
    found = []
    for seed in seeds:
        data = read_export_metrics(
            Path(runs_root) / benchmark / model / f"seed{seed}" / "export.json"
        )
        if data is not None:
            found.append((seed, data))
    if not found:
        return None
    return {
        "parity_rel_error_max": max(float(d["parity_rel_error"]) for _, d in found),
        "onnx_mb": round(max(int(d.get("bytes", 0)) for _, d in found) / 2**20, 2),
        "seeds": [s for s, _ in found],
    }
