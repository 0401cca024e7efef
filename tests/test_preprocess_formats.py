"""``preprocess --format npz`` and ``--format pyskl --raw``: the other toolkits' conventions."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from skelact.cli import app
from skelact.data.formats import Clip, npz, pyskl
from skelact.data.prenorm import pre_normalise
from skelact.data.preprocess import PreprocessSettings, preprocess
from skelact.data.safe_pickle import safe_load
from skelact.layouts import NTU25


def _raw(reference_dir: Path) -> Path:
    return reference_dir / "ntu_prep" / "raw"


@pytest.fixture(scope="module")
def pickles(reference_dir, tmp_path_factory) -> dict[str, list[dict]]:
    """The default (mmaction) output: what the other formats must agree with."""
    out = tmp_path_factory.mktemp("mmaction")
    preprocess(PreprocessSettings("ntu60", _raw(reference_dir), out, workers=1))
    loaded = {}
    for key in ("xsub/train", "xsub/val", "xview/train", "xview/val"):
        with open(out / f"{key}.pkl", "rb") as f:
            loaded[key] = pickle.load(f)
    return loaded


def test_npz_holds_the_prenormalised_samples(reference_dir, pickles, tmp_path) -> None:
    result = preprocess(
        PreprocessSettings("ntu60", _raw(reference_dir), tmp_path, format="npz", workers=2)
    )
    assert result.outputs == {b: str(tmp_path / f"{b}.npz") for b in ("xsub", "xview")}
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "preprocess_report.json", "xsub.npz", "xview.npz"]  # fmt: skip
    for bench in ("xsub", "xview"):
        with np.load(tmp_path / f"{bench}.npz", allow_pickle=False) as z:
            assert z["x_train"].shape == (len(pickles[f"{bench}/train"]), 300, 2 * 25 * 3)
            assert z["y_test"].shape == (len(pickles[f"{bench}/val"]), 60)
        clips = list(npz.read_clips(tmp_path / f"{bench}.npz", NTU25))
        expected = pickles[f"{bench}/train"] + pickles[f"{bench}/val"]
        assert len(clips) == len(expected)
        for clip, ann in zip(clips, expected, strict=True):
            assert isinstance(clip, Clip)
            assert clip.label == ann["label"] and clip.split == clip.name.split("_")[0]
            np.testing.assert_array_equal(clip.keypoint, ann["keypoint"])


@pytest.mark.parametrize("float16", [False, True])
def test_pyskl_raw_is_the_input_of_prenormalisation(
    reference_dir, pickles, tmp_path, float16: bool
) -> None:
    settings = PreprocessSettings(
        "ntu60", _raw(reference_dir), tmp_path, format="pyskl", raw=True, float16=float16
    )
    preprocess(settings)
    data = safe_load(tmp_path / "ntu60_3danno.pkl")
    assert sorted(data["split"]) == ["xsub_train", "xsub_val", "xview_train", "xview_val"]
    dtype = np.float16 if float16 else np.float32
    assert {a["keypoint"].dtype for a in data["annotations"]} == {np.dtype(dtype)}
    assert list(data["annotations"][0]) == ["frame_dir", "label", "total_frames", "keypoint"]
    persons = {a["keypoint"].shape[0] for a in data["annotations"]}
    assert persons == {1, 2}  # one-person samples have M = 1
    normalised = {a["frame_dir"]: a for a in pickles["xsub/train"] + pickles["xsub/val"]}
    train = {a["frame_dir"] for a in pickles["xsub/train"]}
    clips = list(pyskl.read_clips(tmp_path / "ntu60_3danno.pkl", NTU25, split="xsub"))
    assert len(clips) == len(normalised)
    for clip in clips:
        ann = normalised[clip.name]
        assert clip.split == ("train" if clip.name in train else "val")
        assert np.abs(clip.keypoint[0]).max() > 0.5  # camera space, metres: not centred
        if not float16:  # as read: pre-normalising it gives exactly the default output
            two = np.zeros((2, *clip.keypoint.shape[1:]), np.float32)
            two[: len(clip.keypoint)] = clip.keypoint
            np.testing.assert_array_equal(pre_normalise(two), ann["keypoint"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--format", "npz", "--raw"], "only with --format pyskl"),
        (["--format", "pyskl", "--float16"], "--format pyskl --raw only"),
        (["--format", "csv"], "format"),
    ],
)
def test_cli_refuses_inconsistent_options(reference_dir, tmp_path, options, message) -> None:
    args = ["preprocess", "--raw-dir", str(_raw(reference_dir)), "--out-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, *options, "--quiet"])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "preprocess_report.json").exists()


def test_cli_npz(reference_dir, tmp_path) -> None:
    args = ["preprocess", "--raw-dir", str(_raw(reference_dir)), "--out-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--format", "npz", "--benchmark", "xview"])
    assert result.exit_code == 0, result.output
    assert "xview.npz" in result.output and not (tmp_path / "xsub.npz").exists()
