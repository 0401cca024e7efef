"""Prediction with ONNX Runtime and NumPy only: never imports torch.

A deployment then needs neither torch nor CUDA: a raw file goes through the pipeline's own
reader and pre-normalisation (:mod:`skelact.data.preprocess`, NumPy), the val sampling rule
(:mod:`skelact.data.sampling`, the same module the training code's sampler is checked against)
and the exported network. ``tests/test_deploy_runtime.py`` runs this path in a fresh interpreter
and asserts that ``torch`` was never imported.

Both backends (`OnnxModel` here, ``skelact.deploy.torch_backend.TorchModel``) have the same two
members, ``info`` (:class:`~skelact.deploy.metadata.ModelInfo`) and ``logits(batch)``, so the
stream predictor and `classify` work with either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from skelact.data.sampling import val_clip
from skelact.deploy.metadata import INPUT_NAME, DeployError, ModelInfo, require_ntu_input

if TYPE_CHECKING:
    from skelact.engine.predict import Prediction


class Backend(Protocol):
    info: ModelInfo

    def logits(self, batch: np.ndarray) -> np.ndarray: ...


def session_options(threads: int | None = None):
    """ORT options for batch-1 latency on a CPU.

    Full graph optimisation (constant folding, conv+bn/act fusion); one op at a time
    (``ORT_SEQUENTIAL``: these graphs are chains, parallel op scheduling only adds overhead);
    ``threads`` intra-op threads, default all cores the process may use.
    """
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = int(threads) if threads else _usable_cpus()
    opts.inter_op_num_threads = 1
    return opts


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise DeployError(
            "onnxruntime is not installed: pip install 'skelact[deploy]' (or onnxruntime)"
        ) from None
    return onnxruntime


class OnnxModel:
    """An exported skelact model in an ONNX Runtime CPU session, with its metadata."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        ort = _ort()
        self.path = Path(path)
        if not self.path.is_file():
            raise DeployError(f"ONNX model not found: {self.path}")
        try:
            self.session = ort.InferenceSession(
                str(self.path), session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own untyped errors for bad files
            raise DeployError(f"{self.path}: cannot load the ONNX model ({exc})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        self.info = ModelInfo.from_props(props, self.path)
        inputs = [i.name for i in self.session.get_inputs()]
        if inputs != [INPUT_NAME]:
            raise DeployError(f"{self.path}: expected one input {INPUT_NAME!r}, found {inputs}")

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """``N x C x T x V x M`` float32 -> ``N x K`` float32 logits."""
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {INPUT_NAME: x})[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (the evaluation code's formula)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def classify(model: Backend, keypoint: np.ndarray) -> np.ndarray:
    """Class probabilities (float64, K) for one pre-normalised ``(M, T, V, C)`` sample."""
    info = model.info
    x = val_clip(keypoint, info.clip_len, info.val_clip_ratio)[None]
    return softmax(model.logits(x))[0]


def top_k(probs: np.ndarray, names: tuple[str, ...] | list[str], k: int):
    """``[(class, name, probability)]`` of the ``k`` largest, ties in class order."""
    order = np.argsort(-probs, kind="stable")[: min(k, len(probs))]
    return [(int(c), names[c], float(probs[c])) for c in order]


def predict_file_onnx(
    path: str | Path, onnx: str | Path | OnnxModel, *, top_k_classes: int = 5,
    threads: int | None = None,
) -> Prediction:  # fmt: skip
    """``skelact predict FILE --onnx MODEL``: the torch path's result, computed without torch.

    ``FILE`` is a raw NTU ``.skeleton`` file, so the model must be an ``ntu25`` 3-D one.
    """
    from skelact.data.preprocess import load_sample
    from skelact.engine.predict import Prediction

    model = onnx if isinstance(onnx, OnnxModel) else OnnxModel(onnx, threads)
    require_ntu_input(model.info.layout, model.info.in_channels, model.path)
    ann = load_sample(path)
    probs = classify(model, ann["keypoint"])
    names = model.info.class_names
    label = int(ann["label"])
    return Prediction(
        sample=str(ann["frame_dir"]),
        model=model.info.model,
        num_frames=int(ann["total_frames"]),
        label=label if label >= 0 else None,
        label_name=names[label] if 0 <= label < len(names) else None,
        top=top_k(probs, names, top_k_classes),
    )


def predict_any(
    path: str | Path,
    *,
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    model: str | None = None,
    top_k_classes: int = 5,
    device: str = "auto",
) -> Prediction:
    """``skelact predict``: ONNX Runtime when ``onnx`` is given (no torch), else the torch path."""
    if (checkpoint is None) == (onnx is None):
        raise DeployError("give exactly one of --checkpoint and --onnx")
    if onnx is not None:
        if model is not None:
            raise DeployError("--model is for checkpoints; an ONNX file records its model")
        return predict_file_onnx(path, onnx, top_k_classes=top_k_classes)
    from skelact.engine.predict import predict_file

    return predict_file(path, checkpoint, model=model, top_k=top_k_classes, device=device)
