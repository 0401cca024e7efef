"""Generated files in each new format -> ``skelact import`` -> models learn well above chance.

Per format (MMPose JSON, YOLO .txt, AlphaPose JSON, the Kinetics-Skeleton release, NW-UCLA's
all_sqe), ``skelact synth`` writes its motions in exactly that format and layout (passers-by
included where estimators would detect them), the test keeps three classes with distinct motions
(hand to mouth, an overarm throw, sitting down; chance 1/3), and the import's pickles train with
the pipeline's settings merge. Sized for CI (about a minute in all on two cores): synth writes
only the first eight actions, 16 clips each (30 train / 18 val clips of the three kept), and
one short HCN-with-bias run per format (each format has its own reader, layout and split path)
must reach twice chance. The five models on one import are test_custom_training.py's.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from skelact.config import parse_params, train_config
from skelact.data.formats import kinetics, nwucla
from skelact.data.importer import ImportSettings, import_data
from skelact.data.synth.formats import FormatSettings, write_synthetic
from skelact.data.synth.stage import SynthSettings
from skelact.data.validate import validate_file
from skelact.engine.train import train

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ACTIONS = (1, 7, 8)  # drink water, throw, sitting down
#: format -> (layout, dims, the folder the import reads, below synth's output)
FORMATS = {
    "mmpose": ("coco17", 2, "clips"),
    "yolo": ("coco17", 2, "labels"),
    "alphapose": ("halpe26", 2, "clips"),
    "kinetics": ("openpose_coco18", 2, "."),
    "nwucla": ("kinect_v1_20", 3, "."),
}
UCLA_KEPT = {f"a{list(nwucla.ACTIONS)[a - 1]:02d}_" for a in ACTIONS}


def _kept(name: str) -> bool:
    if name.startswith("a") and "_s" in name:  # an NW-UCLA name
        return name[:4] in UCLA_KEPT
    return int(name.split("A")[-1][:3]) in ACTIONS


def _keep_three_classes(raw: Path, fmt: str) -> None:
    """Delete every other class's files (and labels rows) of synth's output."""
    for path in raw.rglob("*"):
        if not path.is_file() or path.name in ("labels.csv", "synth.json"):
            continue
        if path.name.endswith("_label.json"):
            continue
        stem = path.stem.rsplit("_", 1)[0] if fmt == "yolo" else path.stem
        if not _kept(stem):
            path.unlink()
    labels = raw / "labels.csv"
    if labels.is_file():
        rows = list(csv.reader(labels.read_text().splitlines()))
        kept = [rows[0]] + [r for r in rows[1:] if _kept(r[0])]
        labels.write_text("\n".join(",".join(r) for r in kept) + "\n")
    if fmt == "kinetics":
        for _, label_file in kinetics.PARTS.values():
            entries = json.loads((raw / label_file).read_text())
            kept_entries = {k: v for k, v in entries.items() if _kept(k)}
            (raw / label_file).write_text(json.dumps(kept_entries))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, Path]:
    """Per format: the folder of the imported train.pkl / val.pkl."""
    out = {}
    for fmt, (layout, dims, sub) in FORMATS.items():
        root = tmp_path_factory.mktemp(fmt)
        raw = root / "raw"
        write_synthetic(
            SynthSettings(out_dir=raw, num_classes=max(ACTIONS), samples_per_class=16,
                          frames_min=32, frames_max=40),
            FormatSettings(fmt, layout, dims),
        )  # fmt: skip
        _keep_three_classes(raw, fmt)
        labels = raw / "labels.csv" if (raw / "labels.csv").is_file() else None
        name = {"kinetics": "kinetics", "nwucla": "nwucla_xview"}.get(fmt, "custom")
        result = import_data(ImportSettings(
            fmt=fmt, src=raw / sub, layout=layout, labels=labels, out_dir=root / "prepared",
            img_shape=(1080, 1920) if fmt == "yolo" else None, name=name))  # fmt: skip
        assert result.totals["train"] >= 30 and result.totals["val"] >= 15, result.totals
        assert (result.dims, result.scores) == (dims, dims == 2)
        assert validate_file(root / "prepared" / name / "train.pkl").ok
        out[fmt] = root / "prepared" / name
    return out


#: One short run: batch 8, constant LR (the step lies past the end), validated every 2 epochs;
#: on this data each format's best val top-1 is 0.72-0.94 (chance 0.33).
SHORT = {"epochs": 20, "lr": 0.001, "batch_size": 8, "lr_steps": [25], "val_interval": 2}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_hcnb_learns_an_imported_format(imported: dict[str, Path], fmt: str, tmp_path: Path):
    values = yaml.safe_load((REPO / "params.yaml").read_text())
    values["data"].update(source="custom", format="openpose", layout="coco17")
    values.update(benchmarks=["custom"], tracking={"enabled": False})
    data = imported[fmt]
    config = train_config(
        "hcnb", parse_params(values), "custom", train_path=str(data / "train.pkl"),
        val_path=str(data / "val.pkl"), out_dir=str(tmp_path / "hcnb"), seed=0, clip_len=32,
        quiet=True, **SHORT,
    )  # fmt: skip
    result = train(config)
    assert result.best_top1 >= 0.65, f"{fmt} hcnb: {result.best_top1:.3f} (chance 0.333)"
