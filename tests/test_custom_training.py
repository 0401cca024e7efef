"""Each of the five models learns 2-D coco17 skeletons imported from OpenPose JSON.

The whole custom-data path in one process, on data the test writes: ``skelact synth`` motions
projected to COCO-17 pixels with scores and written as OpenPose per-frame JSON (with detections
of passers-by to match away), ``skelact import`` (tracking, person selection, body-size
normalisation, the split from the labels' ``split`` column), then a short CPU training of every
model with the pipeline's own settings merge. Three classes with distinct motions keep it short;
chance is 1/3, and each model must reach far above it.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import SHORT_RUN
from skelact.config import parse_params, train_config
from skelact.data.importer import ImportSettings, import_data
from skelact.data.synth.formats import FormatSettings, write_synthetic
from skelact.data.synth.stage import SynthSettings
from skelact.engine.train import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

#: NTU actions 1, 7 and 8 of the synthetic set: hand to mouth, an overarm throw, sitting down.
CLASSES = ("drink water", "throw", "sitting down")



@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """``custom/{train,val}.pkl`` of three synthetic classes imported from OpenPose JSON."""
    root = tmp_path_factory.mktemp("openpose")
    raw = root / "raw"
    write_synthetic(
        SynthSettings(out_dir=raw, num_classes=10, samples_per_class=30, frames_min=32,
                      frames_max=48),
        FormatSettings("openpose", "coco17", 2),
    )  # fmt: skip
    rows = list(csv.reader((raw / "labels.csv").read_text().splitlines()))
    kept = [rows[0]] + [r for r in rows[1:] if r[1] in CLASSES]
    for clip, label, _ in rows[1:]:
        if label not in CLASSES:
            shutil.rmtree(raw / clip)
    (raw / "labels.csv").write_text("\n".join(",".join(r) for r in kept) + "\n")
    settings = ImportSettings(fmt="openpose", src=raw, layout="coco17", labels=raw / "labels.csv",
                              out_dir=root / "prepared")  # fmt: skip
    result = import_data(settings)
    assert result.classes == sorted(CLASSES) and result.split_method == "column"
    assert (result.dims, result.scores) == (2, True)
    return root / "prepared" / "custom"


@pytest.mark.parametrize("model", list(SHORT_RUN))
def test_each_model_learns_imported_openpose_coco17(imported: Path, model: str, tmp_path: Path):
    values = yaml.safe_load((REPO / "params.yaml").read_text())  # the project's quick recipe
    values["data"].update(source="custom", format="openpose", layout="coco17")
    values.update(benchmarks=["custom"], tracking={"enabled": False})
    params = parse_params(values)
    config = train_config(
        model, params, "custom", train_path=str(imported / "train.pkl"),
        val_path=str(imported / "val.pkl"), out_dir=str(tmp_path / model), seed=0, clip_len=32,
        quiet=True, **SHORT_RUN[model],
    )  # fmt: skip
    assert config.num_classes is None  # counted from the import's classes.txt
    result = train(config)
    assert result.best_top1 >= 0.75, f"{model}: {result.best_top1:.3f} (chance 0.333)"
