"""``skelact stream``: windows, equality with predict, stdin JSON lines, bad lines, smoothing."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from deploy_support import Exports, shared_exports
from skelact.cli import app
from skelact.data.skeleton_file import read_skeleton
from skelact.deploy.runtime import OnnxModel, predict_file_onnx
from skelact.deploy.stream import (
    StreamInputError,
    run_stream_command,
    skeleton_frames,
    stream,
)
from skelact.engine.predict import predict_file

SAMPLES = ["S001C001P001R001A001", "S006C003P036R002A006", "S007C003P002R002A024"]


@pytest.fixture(scope="session")
def exported(reference_dir: Path, tmp_path_factory) -> Exports:
    return shared_exports(reference_dir, tmp_path_factory)


def raw(reference_dir: Path, sample: str) -> Path:
    return reference_dir / "ntu_prep" / "raw" / f"{sample}.skeleton"


def json_lines(path: Path) -> list[str]:
    """The file's frames in the stdin schema, bodies in file order (slots with data)."""
    bodies = read_skeleton(path)
    lines = []
    for t in range(bodies.shape[1]):
        present = [b for b in range(bodies.shape[0]) if bodies[b, t].any()]
        frame = {"bodies": [{"id": str(b), "joints": bodies[b, t].tolist()} for b in present]}
        lines.append(json.dumps(frame))
    return lines


def run(source: str, *, stdin: str | None = None, **options) -> tuple[list[dict], str, int]:
    out, err = io.StringIO(), io.StringIO()
    skipped = run_stream_command(
        source, stdin=io.StringIO(stdin) if stdin is not None else None, out=out, err=err,
        jsonl=True, **options,
    )  # fmt: skip
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    for row in rows:
        row.pop("latency_ms")
    return rows, err.getvalue(), skipped


@pytest.mark.parametrize("sample", SAMPLES)
def test_whole_file_window_equals_predict(exported, reference_dir: Path, sample) -> None:
    path = raw(reference_dir, sample)
    entry = exported["own", "tacnn"]
    frames = read_skeleton(path).shape[1]
    onnx_rows, _, _ = run(str(path), onnx=entry["onnx"], window=300, stride=1, top_k_classes=60)
    torch_rows, _, _ = run(str(path), checkpoint=entry["checkpoint"], window=frames, stride=5,
                           top_k_classes=60)  # fmt: skip
    assert [(r["start"], r["end"]) for r in onnx_rows] == [(0, frames)]
    assert [(r["start"], r["end"]) for r in torch_rows] == [(0, frames)]
    onnx_pred = predict_file_onnx(path, entry["onnx"], top_k_classes=60)
    torch_pred = predict_file(path, entry["checkpoint"], top_k=60, device="cpu")
    # same backend: exactly predict's output
    assert [(t["class"], t["action"], t["probability"]) for t in onnx_rows[0]["top"]] == [
        (c, n, p) for c, n, p in onnx_pred.top
    ]
    # torch backend vs the torch predict path (its batched torch sampler): equal to rounding
    assert [t["class"] for t in torch_rows[0]["top"]] == [c for c, _, _ in torch_pred.top]
    np.testing.assert_allclose(
        [t["probability"] for t in torch_rows[0]["top"]], [p for *_, p in torch_pred.top],
        rtol=1e-6, atol=1e-7,
    )  # fmt: skip


def test_windows_and_stdin_equal_the_file(exported, reference_dir: Path, tmp_path: Path) -> None:
    path = raw(reference_dir, SAMPLES[0])  # 125 frames, leading empty frames, 4 bodies
    onnx = exported["reference", "hcn"]["onnx"]
    from_file, _, _ = run(str(path), onnx=onnx, window=64, stride=20, top_k_classes=3)
    assert [(r["start"], r["end"]) for r in from_file] == [(0, 64), (20, 84), (40, 104),
                                                           (60, 124)]  # fmt: skip
    assert all(len(r["top"]) == 3 for r in from_file)
    from_stdin, err, skipped = run("-", stdin="\n".join(json_lines(path)) + "\n", onnx=onnx,
                                   window=64, stride=20, top_k_classes=3)  # fmt: skip
    assert from_stdin == from_file and err == "" and skipped == 0
    recorded = tmp_path / "recording.jsonl"
    recorded.write_text("\n".join(json_lines(path)) + "\n")
    assert run(str(recorded), onnx=onnx, window=64, stride=20, top_k_classes=3)[0] == from_file
    assert [r["bodies"] for r in from_file] == [2, 2, 2, 2]  # the two of highest energy


def test_bad_lines_are_reported_and_skipped_or_stop_with_strict(
    exported, reference_dir: Path
) -> None:
    path = raw(reference_dir, SAMPLES[2])
    onnx = exported["reference", "tscnn"]["onnx"]
    good = json_lines(path)
    one_body = json.loads(good[5])
    one_body["bodies"][0]["joints"] = one_body["bodies"][0]["joints"][:-1]
    nan_body = json.loads(good[5])
    nan_body["bodies"][0]["joints"][3][1] = float("nan")
    bad = ['{"bodies": [', json.dumps(one_body), json.dumps(nan_body), '{"frame": 3}', "", "[]"]
    lines = good[:10] + bad + good[10:]
    clean, _, _ = run("-", stdin="\n".join(good), onnx=onnx, window=32, stride=16)
    dirty, err, skipped = run("-", stdin="\n".join(lines), onnx=onnx, window=32, stride=16)
    assert dirty == clean and skipped == 5
    warnings = err.splitlines()
    assert [w.split(":")[2] for w in warnings] == ["11", "12", "13", "14", "16"]
    assert "not JSON" in warnings[0] and "got shape (24, 3)" in warnings[1]
    assert "non-finite" in warnings[2] and "'bodies' list" in warnings[3]

    out = io.StringIO()
    with pytest.raises(StreamInputError, match=r"<stdin>:11: not JSON"):
        run_stream_command("-", onnx=onnx, window=4, stride=4, strict=True,
                           stdin=io.StringIO("\n".join(lines)), out=out)  # fmt: skip
    assert len(out.getvalue().splitlines()) == 2  # the windows before the bad line were printed


def test_smoothing_is_an_ema_of_the_probabilities(exported, reference_dir: Path) -> None:
    model = OnnxModel(exported["reference", "tscnn"]["onnx"])
    frames = list(skeleton_frames(raw(reference_dir, SAMPLES[0])))
    plain = list(stream(frames, model, window=32, stride=24, top_k_classes=60))
    smooth = list(stream(frames, model, window=32, stride=24, top_k_classes=60, smooth=0.75))

    def dense(result) -> np.ndarray:
        probs = np.zeros(60)
        for c, _, p in result.top:
            probs[c] = p
        return probs

    expected = dense(plain[0])
    for p, s in zip(plain, smooth, strict=True):
        expected = expected if p is plain[0] else 0.75 * expected + 0.25 * dense(p)
        np.testing.assert_allclose(dense(s), expected, atol=1e-12)


def test_stream_cli_text_and_errors(exported, reference_dir: Path) -> None:
    onnx = str(exported["reference", "tscnn"]["onnx"])
    path = raw(reference_dir, SAMPLES[1])  # 40 frames: shorter than the window
    runner = CliRunner()
    done = runner.invoke(app, ["stream", str(path), "--onnx", onnx, "--window", "64",
                               "--stride", "1", "--top-k", "2"])  # fmt: skip
    assert done.exit_code == 0, done.output
    (line,) = done.stdout.splitlines()
    assert line.startswith("frames      0-39") and " ms | A" in line
    empty = runner.invoke(app, ["stream", "-", "--onnx", onnx, "--window", "2", "--stride", "1",
                                "--jsonl"], input='{"bodies": []}\n' * 3)  # fmt: skip
    assert empty.exit_code == 0, empty.output
    assert [json.loads(x)["bodies"] for x in empty.stdout.splitlines()] == [0, 0]
    both = runner.invoke(app, ["stream", str(path), "--onnx", onnx, "--checkpoint", onnx])
    assert both.exit_code == 1 and "exactly one of --checkpoint and --onnx" in both.output
    strict = runner.invoke(app, ["stream", "-", "--onnx", onnx, "--strict"], input="oops\n")
    assert strict.exit_code == 1 and "error: <stdin>:1: not JSON" in strict.output
