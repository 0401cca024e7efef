"""``skelact stream``: sliding-window action recognition over a recording or a live tracker.

Every window of ``window`` frames, advanced by ``stride``, is treated exactly as preprocessing
treats a whole file: the two bodies of highest motion energy *within the window* are kept and the
window is pre-normalised (:func:`skelact.data.prenorm.normalise_bodies`, the same function), then
sampled with the val rule (:mod:`skelact.data.sampling`) and classified. So a window that covers
a whole file gives exactly ``skelact predict``'s probabilities, and windows before the first body
or across a change of tracked bodies behave as such files do in preprocessing.

Sources: a raw ``.skeleton`` file (read and validated whole by the pipeline's reader), or ``-``:
JSON lines on stdin, one frame per line (the schema is `FRAME_SCHEMA`), or a recorded ``.jsonl``
file of such lines. Bodies are kept in the
order they are listed, the first ``MAX_KINECT_BODIES`` of a frame, as in a ``.skeleton`` file.

Windows are emitted when their last frame arrives; a stream shorter than one window gives one
window over all its frames at the end. A malformed line is reported (with its line number) and
skipped, or stops the stream with ``strict``. Never imports torch (the backend may).

Both sources are NTU's Kinect skeletons (25 joints, 3-D), so a model trained on another layout
(or with a score channel) is refused before the first frame is read.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from skelact.data.prenorm import normalise_bodies
from skelact.data.skeleton_file import MAX_KINECT_BODIES, read_skeleton
from skelact.deploy.metadata import DeployError, require_ntu_input
from skelact.deploy.runtime import Backend, classify, top_k
from skelact.layouts import NTU25

NUM_JOINTS = NTU25.num_joints

FRAME_SCHEMA = (
    '{"bodies": [{"id": "<any, optional>", "joints": [[x, y, z], ... one per joint]}, ...]}'
)


class StreamInputError(DeployError):
    """A line of the input stream that is not a frame; says which line and why."""


@dataclass
class WindowResult:
    """One window: frames ``[start, end)`` of the accepted frames, its top classes, latency."""

    start: int
    end: int
    bodies: int  # non-empty bodies among the two kept
    latency_ms: float  # normalise + sample + infer
    top: list[tuple[int, str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "start": self.start,
            "end": self.end,
            "bodies": self.bodies,
            "latency_ms": round(self.latency_ms, 3),
            "top": [{"class": c, "action": n, "probability": p} for c, n, p in self.top],
        }

    def to_text(self) -> str:
        tops = "  ".join(f"A{c + 1:03d} {n} {p:6.2%}" for c, n, p in self.top)
        noun = "body" if self.bodies == 1 else "bodies"
        return (
            f"frames {self.start:>6}-{self.end - 1:<6} {self.bodies} {noun:6} "
            f"{self.latency_ms:7.2f} ms | {tops}"
        )


# --------------------------------------------------------------------------- sources


def parse_frame(line: str, where: str) -> np.ndarray:
    """One JSON line -> ``(MAX_KINECT_BODIES, V, 3)`` float64, zeros for absent bodies."""
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise StreamInputError(f"{where}: not JSON ({exc.args[0]})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("bodies"), list):
        raise StreamInputError(f"{where}: expected an object with a 'bodies' list: {FRAME_SCHEMA}")
    frame = np.zeros((MAX_KINECT_BODIES, NUM_JOINTS, 3), dtype=np.float64)
    for b, body in enumerate(obj["bodies"]):
        joints = body.get("joints") if isinstance(body, dict) else None
        try:
            xyz = np.asarray(joints, dtype=np.float64)
        except (ValueError, TypeError):
            xyz = None
        if xyz is None or xyz.shape != (NUM_JOINTS, 3):
            shape = "no 'joints'" if xyz is None else f"shape {xyz.shape}"
            raise StreamInputError(
                f"{where}: body {b + 1}: expected 'joints' as {NUM_JOINTS} [x, y, z] numbers, "
                f"got {shape}"
            )
        if not np.isfinite(xyz).all():
            raise StreamInputError(f"{where}: body {b + 1}: non-finite joint coordinate")
        if b < MAX_KINECT_BODIES:  # like the .skeleton reader: others validated, not kept
            frame[b] = xyz
    return frame


def json_frames(
    lines: Iterable[str], name: str, on_error: Callable[[StreamInputError], None]
) -> Iterator[np.ndarray]:
    """Frames of a JSON-lines stream; bad lines go to ``on_error`` (which may raise)."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_frame(line, f"{name}:{number}")
        except StreamInputError as exc:
            on_error(exc)


def skeleton_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Frames of a raw ``.skeleton`` file (validated whole first, as preprocessing does)."""
    bodies = read_skeleton(path)  # (4, T, V, 3)
    for t in range(bodies.shape[1]):
        yield bodies[:, t]


# --------------------------------------------------------------------------- windows


def windows(frames: Iterable[np.ndarray], window: int, stride: int):
    """``(start, end, (4, end - start, V, 3) block)`` for each window, as its frames arrive."""
    if window < 1 or stride < 1:
        raise DeployError(f"--window and --stride must be >= 1 (got {window}, {stride})")
    buffer: deque[np.ndarray] = deque(maxlen=window)
    count = 0
    for frame in frames:
        buffer.append(frame)
        count += 1
        if count >= window and (count - window) % stride == 0:
            yield count - window, count, np.stack(buffer, axis=1)
    if 0 < count < window:
        yield 0, count, np.stack(buffer, axis=1)


def classify_window(model: Backend, block: np.ndarray) -> tuple[np.ndarray, int]:
    """Probabilities of one raw ``(4, W, V, 3)`` window and its number of non-empty bodies."""
    keypoint = normalise_bodies(block)
    bodies = int((keypoint.reshape(keypoint.shape[0], -1) != 0).any(axis=1).sum())
    return classify(model, keypoint), bodies


def stream(
    frames: Iterable[np.ndarray],
    model: Backend,
    *,
    window: int,
    stride: int,
    top_k_classes: int = 5,
    smooth: float = 0.0,
) -> Iterator[WindowResult]:
    """Results per window; ``smooth`` = weight of the past in an EMA of the probabilities."""
    if not 0.0 <= smooth < 1.0:
        raise DeployError(f"--smooth must be in [0, 1), got {smooth}")
    info = model.info
    require_ntu_input(info.layout, info.in_channels, getattr(model, "path", info.model))
    names = model.info.class_names
    average: np.ndarray | None = None
    for start, end, block in windows(frames, window, stride):
        begin = time.perf_counter()
        probs, bodies = classify_window(model, block)
        latency = (time.perf_counter() - begin) * 1e3
        average = probs if average is None else smooth * average + (1.0 - smooth) * probs
        yield WindowResult(start, end, bodies, latency, top_k(average, names, top_k_classes))


# --------------------------------------------------------------------------- command


def load_backend(
    checkpoint: str | Path | None, onnx: str | Path | None, model: str | None = None,
    threads: int | None = None,
) -> Backend:  # fmt: skip
    """ONNX Runtime for ``onnx`` (no torch), PyTorch for ``checkpoint``; exactly one."""
    if (checkpoint is None) == (onnx is None):
        raise DeployError("give exactly one of --checkpoint and --onnx")
    if onnx is not None:
        from skelact.deploy.runtime import OnnxModel

        return OnnxModel(onnx, threads)
    from skelact.deploy.torch_backend import TorchModel

    return TorchModel(checkpoint, model)


def run_stream_command(
    source: str,
    *,
    checkpoint: str | Path | None = None,
    onnx: str | Path | None = None,
    model: str | None = None,
    window: int = 64,
    stride: int = 8,
    top_k_classes: int = 5,
    smooth: float = 0.0,
    jsonl: bool = False,
    strict: bool = False,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """``skelact stream``: print one line per window; returns the number of skipped lines."""
    out = out or sys.stdout
    err = err or sys.stderr
    if source != "-" and not Path(source).is_file():
        raise DeployError(f"stream source not found: {source}")
    backend = load_backend(checkpoint, onnx, model)
    skipped = 0

    def on_error(exc: StreamInputError) -> None:
        nonlocal skipped
        if strict:
            raise exc
        skipped += 1
        err.write(f"warning: {exc} (line skipped)\n")
        err.flush()

    with contextlib.ExitStack() as stack:
        if source == "-":
            frames: Iterable[np.ndarray] = json_frames(stdin or sys.stdin, "<stdin>", on_error)
        elif source.endswith(".jsonl"):
            handle = stack.enter_context(open(source, encoding="utf-8"))
            frames = json_frames(handle, source, on_error)
        else:
            frames = skeleton_frames(source)
        for result in stream(frames, backend, window=window, stride=stride,
                             top_k_classes=top_k_classes, smooth=smooth):  # fmt: skip
            out.write((json.dumps(result.to_dict()) if jsonl else result.to_text()) + "\n")
            out.flush()
    return skipped
