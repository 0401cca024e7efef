"""``skelact export --format onnx``: a checkpoint -> a self-describing, parity-checked ONNX file.

Why the check is part of the export: an exporter can change numerics silently (an op lowered
differently, a shape baked in), and nobody compares a deployed model against training code
later. So the file is written to a temporary name, loaded back with the same runtime that
serves it (:class:`~skelact.deploy.runtime.OnnxModel`, which also validates the metadata), run
on a fixed input next to PyTorch in eval mode, and renamed into place only when the relative
error ``||y_onnx - y_torch|| / ||y_torch||`` is at most ``tolerance`` (default 1e-4, the bound
of the model parity tests). A failing export leaves nothing behind.

The exporter is PyTorch's TorchScript-based one (``dynamo=False``): it handles all five models
without extra packages (the dynamo exporter needs ``onnxscript``) and its output is stable
across torch releases. The batch axis is dynamic; the clip length is the checkpoint's.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from skelact.atomic import atomic_write, atomic_write_text
from skelact.deploy.metadata import INPUT_NAME, OUTPUT_NAME, DeployError
from skelact.deploy.runtime import OnnxModel
from skelact.deploy.torch_backend import TorchModel

FORMATS = ("onnx",)
DEFAULT_OPSET = 17
DEFAULT_TOLERANCE = 1e-4
#: Samples in the fixed check input (> 1 also proves the batch axis is dynamic).
CHECK_BATCH = 2


class ExportParityError(DeployError):
    """The exported model does not reproduce PyTorch within the tolerance; nothing was written."""


@dataclass
class ExportResult:
    model: str
    checkpoint: str
    onnx: str
    opset: int
    clip_len: int
    num_classes: int
    parity_rel_error: float
    tolerance: float
    bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)

    def metrics(self) -> dict:
        """The numbers only: the pipeline's ``export.json`` is a DVC metrics file, and names or
        paths there would become string columns of ``dvc exp show``."""
        out = {k: v for k, v in asdict(self).items() if isinstance(v, (int, float))}
        # DVC prints metrics to 5 decimals, so a relative error of 3e-7 would read 0.0: the
        # file holds it in parts per million (0.3), which stays readable down to 1e-11.
        out["parity_ppm"] = float(f"{out.pop('parity_rel_error') * 1e6:.4g}")
        return out


def check_input(shape: tuple[int, ...]) -> np.ndarray:
    """The fixed check input: seeded standard normal, the scale of pre-normalised joints."""
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def relative_error(y: np.ndarray, ref: np.ndarray) -> float:
    """``||y - ref|| / ||ref||`` in float64; inf for a shape mismatch or non-finite output."""
    if y.shape != ref.shape or not np.isfinite(y).all():
        return float("inf")
    ref64 = ref.astype(np.float64)
    return float(np.linalg.norm(y.astype(np.float64) - ref64) / max(np.linalg.norm(ref64), 1e-30))


def onnx_bytes(model: TorchModel, opset: int = DEFAULT_OPSET) -> bytes:
    """The model as ONNX bytes with the skelact metadata (not yet checked)."""
    import onnx

    example = torch.from_numpy(check_input(model.input_shape(1)))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # the deprecation notice of the TorchScript exporter and its constant-folding notes
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                model.net, (example,), buffer, dynamo=False, opset_version=int(opset),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            )  # fmt: skip
        except Exception as exc:  # the exporter raises many types (unsupported op, opset, ...)
            raise DeployError(
                f"{model.path}: ONNX export of {model.info.model!r} with opset {opset} failed: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, model.info.to_props())
    proto.producer_name = "skelact"
    proto.producer_version = model.info.skelact_version
    proto.doc_string = (
        f"skelact {model.info.model}: {INPUT_NAME} N x C x T x V x M float32 (pre-normalised "
        f"{model.info.layout} joints, T = {model.info.clip_len}; the graph computes its "
        f"{model.info.stream} stream itself) -> {OUTPUT_NAME} N x {model.info.num_classes}"
    )
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise DeployError(
            f"{model.path}: the ONNX export of {model.info.model!r} with opset {opset} is not "
            f"valid: {str(exc).splitlines()[0]}"
        ) from None
    return proto.SerializeToString()


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    *,
    model: str | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = DEFAULT_TOLERANCE,
    metrics: str | Path | None = None,
) -> ExportResult:
    """Export ``checkpoint`` to ``out`` if ONNX Runtime reproduces PyTorch within ``tolerance``.

    ``metrics``: also write the result as JSON there (the pipeline's ``export.json``).
    """
    started = time.perf_counter()
    out = Path(out)
    torch_model = TorchModel(checkpoint, model)
    data = onnx_bytes(torch_model, opset)
    x = check_input(torch_model.input_shape(CHECK_BATCH))
    expected = torch_model.logits(x)
    errors: list[float] = []

    def write_checked(tmp: str) -> None:
        Path(tmp).write_bytes(data)
        error = relative_error(OnnxModel(tmp, threads=1).logits(x), expected)
        errors.append(error)
        if not error <= tolerance:
            raise ExportParityError(
                f"{checkpoint}: ONNX Runtime differs from PyTorch by relative error {error:.3g} "
                f"(tolerance {tolerance:g}); {out} not written"
            )

    atomic_write(out, write_checked)
    info = torch_model.info
    result = ExportResult(
        model=info.model, checkpoint=str(checkpoint), onnx=str(out), opset=int(opset),
        clip_len=info.clip_len, num_classes=info.num_classes, parity_rel_error=errors[-1],
        tolerance=float(tolerance), bytes=len(data),
        seconds=round(time.perf_counter() - started, 3),
    )  # fmt: skip
    if metrics is not None:
        atomic_write_text(metrics, json.dumps(result.metrics(), indent=2) + "\n")
    return result


def export_model(
    checkpoint: str | Path, out: str | Path, *, format: str = "onnx", **options
) -> ExportResult:
    """``skelact export``: dispatch on ``format`` (only ONNX today)."""
    if format not in FORMATS:
        raise DeployError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    return export_onnx(checkpoint, out, **options)
