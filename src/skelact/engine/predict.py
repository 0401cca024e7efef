"""``skelact predict``: one raw NTU ``.skeleton`` file -> top-k actions with probabilities.

The file goes through exactly the preprocessing of the pipeline (``load_sample``) and the val
sampling of the model's recipe (center crop + resize), via the same `infer` as ``skelact test``,
so a prediction here equals that sample's row in ``predictions.csv``. Classes are named as the
training run recorded them (its data's ``classes.txt``), else with NTU's action names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Prediction:
    sample: str
    model: str
    num_frames: int
    label: int | None  # from the NTU file name, None when it does not parse
    label_name: str | None
    top: list[tuple[int, str, float]] = field(default_factory=list)  # (class, name, probability)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["top"] = [{"class": c, "action": n, "probability": p} for c, n, p in self.top]
        return d


def predict_file(
    path: str | Path,
    checkpoint: str | Path,
    *,
    model: str | None = None,
    top_k: int = 5,
    device: str = "auto",
    clip_len: int | None = None,
    clip_ratio: float | None = None,
) -> Prediction:
    """Run ``checkpoint`` on one raw file and return its ``top_k`` classes.

    A folder, a missing file, or a file in which no frame holds a body is an error (a clip of
    zeros would still get a confident-looking prediction).
    """
    from skelact.data.dataset import SkeletonSet
    from skelact.data.preprocess import load_sample
    from skelact.data.transforms import ClipSampler
    from skelact.engine.distributed import resolve_device
    from skelact.engine.evaluate import (
        EvaluationError,
        check_input,
        infer,
        load_model,
        resolve_class_names,
        sampling_for,
    )
    from skelact.engine.results import softmax

    path = Path(path)
    if path.is_dir():
        raise EvaluationError(f"{path}: is a folder, expected a .skeleton file")
    if not path.is_file():
        raise EvaluationError(f"{path}: file not found")
    dev = resolve_device(device)
    net, raw, name = load_model(checkpoint, model, clip_len)
    net.to(dev)
    clip_len, clip_ratio = sampling_for(name, raw, clip_len, clip_ratio)

    ann = load_sample(path)
    if not np.asarray(ann["keypoint"]).any():
        raise EvaluationError(
            f"{path}: no body in any of its {int(ann['total_frames'])} frame(s); nothing to predict"
        )
    label = int(ann["label"])
    one = SkeletonSet.from_annotations([{**ann, "label": max(label, 0)}], source=str(path))
    check_input(one, (getattr(net, "skelact_spec", None) or {}).get("options", {}), str(checkpoint))
    sampler = ClipSampler(clip_len, train=False, clip_ratio=clip_ratio, device=dev)
    logits = infer(net, one, sampler, np.arange(1), 1, dev)
    probs = softmax(logits.astype(np.float64))[0]
    names = resolve_class_names(len(probs), raw_ckpt=raw, checkpoint=checkpoint)
    order = np.argsort(-probs, kind="stable")[: min(top_k, len(probs))]
    return Prediction(
        sample=str(ann["frame_dir"]),
        model=name,
        num_frames=int(ann["total_frames"]),
        label=label if label >= 0 else None,
        label_name=names[label] if 0 <= label < len(names) else None,
        top=[(int(c), names[c], float(probs[c])) for c in order],
    )
