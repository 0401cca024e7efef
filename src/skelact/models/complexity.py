"""Parameter and complexity figures comparable with the SkelAct model zoo.

The seed table's "GFLOPs" come from mmcv's counter, which counts one multiply-accumulate as one
operation and ignores functional ops (``torch.matmul``, ``F.relu``...). ``ptflops`` with the
PyTorch backend and ``count_functional=False`` counts the same way, so its figures match the
published ones for the released code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

from skelact.models import MODEL_NAMES, build_model, default_clip_len
from skelact.models.checkpoint import build_options, read_checkpoint

NOTE = (
    "GFLOPs here are multiply-accumulates (GMACs) counted like mmcv/ptflops (functional ops not "
    "counted), kept for comparison with the seed table; its Two-Stream CNN row (0.098 GFLOPs, "
    "0.785 M) does not match the released code."
)


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (buffers such as BatchNorm statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def model_complexity(
    name: str, *, num_classes: int = 60, clip_len: int | None = None, **options
) -> dict:
    """``{model, params, gflops, input_shape}`` for one sample ``1 x C x T x V x M``.

    The shape follows the build options (default NTU's ``1 x 3 x T x 25 x 2``; e.g.
    ``layout='coco17', in_channels=2`` counts a 2-D COCO model).
    """
    clip_len = default_clip_len(name) if clip_len is None else clip_len
    model = build_model(name, num_classes=num_classes, clip_len=clip_len, **options)
    return complexity_of(model, name, clip_len)


def checkpoint_complexity(path: str | os.PathLike) -> dict:
    """:func:`model_complexity` of the model a skelact checkpoint holds, as it was trained
    (layout, coordinates, score channel, persons, classes), at the recipe's clip length (the
    published tables' convention), so a custom-data run is counted on its own input."""
    name, options = build_options(read_checkpoint(path), path)
    options["clip_len"] = clip_len = default_clip_len(name)  # DGCN's weights depend on it
    return complexity_of(build_model(name, **options), name, clip_len)


def complexity_of(model: torch.nn.Module, name: str, clip_len: int) -> dict:
    """Params and GMACs of a built ``model`` for one ``1 x C x clip_len x V x M`` sample."""
    from ptflops import get_model_complexity_info

    model = model.eval()
    spec = model.skelact_spec["options"]
    shape = (spec["in_channels"], clip_len, spec["num_joints"], spec["num_persons"])
    with torch.no_grad():
        macs, _ = get_model_complexity_info(
            model,
            shape,
            as_strings=False,
            print_per_layer_stat=False,
            verbose=False,
            backend="pytorch",
            backend_specific_config={"count_functional": False},
        )
    return {
        "model": name,
        "params": count_params(model),
        "gflops": float(macs) / 1e9,
        "input_shape": [1, *shape],
    }


def complexity_table(names: Iterable[str] | None = None, num_classes: int = 60) -> list[dict]:
    """:func:`model_complexity` for ``names`` (default: all registered), in registry order."""
    names = list(MODEL_NAMES if names is None else names)
    return [model_complexity(n, num_classes=num_classes) for n in names]


def format_table(rows: list[dict]) -> str:
    """Plain-text table of :func:`complexity_table` rows, followed by :data:`NOTE`."""
    header = ("model", "input shape", "params", "GFLOPs")
    body = [
        (
            r["model"],
            " x ".join(str(d) for d in r["input_shape"]),
            f"{r['params']:,}",
            f"{r['gflops']:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n\nNote: " + NOTE
