"""NW-UCLA (Northwestern-UCLA Multiview Action 3D), as the ``all_sqe`` JSON files of CTR-GCN.

Source of the format: the data set (Wang et al., CVPR 2014: 10 actions, 10 subjects, 3 Kinect v1
views) in the form the CTR-GCN family reads it, ``Uason-Chen/CTR-GCN``: ``feeders/feeder_ucla.py``
and the README's data section (the ``all_sqe`` folder of Action-Recognition-with-Transformers /
Glimpse Clouds). One file per clip, ``a<action>_s<subject>_e<environment>_v<view>.json``::

    {"file_name": "a01_s01_e00_v01", "skeletons": [[[x, y, z] x 20 joints] x T frames], ...}

with one person in Kinect v1 camera coordinates (metres), joints in the Kinect SDK 1.x order
(layout ``kinect_v1_20``). Other keys are ignored.

What is converted: the label is the action number's position among the ten actions
(:data:`ACTIONS`; CTR-GCN's label - 1), the split is the cross-view protocol of the papers
(views 1 and 2 train, view 3 val), coordinates stay metres (the importer's body normalisation
centres and scales them), an all-zero joint is absent, and there are no scores. ``SRC`` is the
``all_sqe`` folder, or a folder holding one (then only that subfolder is read).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data.formats import Clip, Dropped, FormatError
from skelact.data.formats.clipfiles import check_for_writing
from skelact.data.formats.perframe import ClipProblem, load_json, numbers
from skelact.layouts import Layout

__all__ = ["ACTIONS", "FOLDER", "TRAIN_VIEWS", "VAL_VIEWS", "class_names", "clip_name",
           "read_clips", "write_clips"]  # fmt: skip

#: NW-UCLA's action numbers and names, in label order (a07 and a10 are not in the data set).
ACTIONS: dict[int, str] = {
    1: "pick up with one hand", 2: "pick up with two hands", 3: "drop trash", 4: "walk around",
    5: "sit down", 6: "stand up", 8: "donning", 9: "doffing", 11: "throw", 12: "carry",
}  # fmt: skip
TRAIN_VIEWS = (1, 2)
VAL_VIEWS = (3,)
FOLDER = "all_sqe"
_NAME = re.compile(r"^a(?P<a>\d+)_s(?P<s>\d+)_e(?P<e>\d+)_v(?P<v>\d+)$")
_LABEL = {action: i for i, action in enumerate(ACTIONS)}


def class_names(src: Path) -> list[str]:
    """The ten action names in label order (the data set's, whatever ``src`` holds)."""
    return list(ACTIONS.values())


def clip_name(action: int, subject: int, environment: int, view: int) -> str:
    """``a01_s01_e00_v01``: the data set's file stem."""
    return f"a{action:02d}_s{subject:02d}_e{environment:02d}_v{view:02d}"


def _folder(src: Path) -> Path:
    if not src.is_dir():
        raise FormatError(f"{src}: not a folder; nwucla input is the all_sqe folder of JSON files")
    if (src / FOLDER).is_dir():
        return src / FOLDER
    return src


def read_clips(src: Path, layout: Layout) -> Iterator[Clip | Dropped]:
    """Every ``.json`` file of the ``all_sqe`` folder (sorted by name)."""
    folder = _folder(Path(src))
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))
    if not files:
        raise FormatError(f"{folder}: no NW-UCLA .json files")
    if layout.num_joints != 20:
        raise FormatError(f"{folder}: NW-UCLA skeletons have 20 joints (layout kinect_v1_20); "
                          f"layout {layout.name} has {layout.num_joints}")  # fmt: skip
    for path in files:
        try:
            yield _read_file(path)
        except ClipProblem as problem:
            yield Dropped(path.stem, str(problem))


def _read_file(path: Path) -> Clip:
    match = _NAME.match(path.stem)
    if match is None:
        raise ClipProblem(f"{path.name}: not an NW-UCLA name (a<action>_s<subject>_e<env>_v<view>)")
    action, view = int(match["a"]), int(match["v"])
    if action not in _LABEL:
        raise ClipProblem(f"{path.name}: action {action} is not one of NW-UCLA's "
                          f"{', '.join(map(str, ACTIONS))}")  # fmt: skip
    if view not in TRAIN_VIEWS + VAL_VIEWS:
        raise ClipProblem(f"{path.name}: view {view}; NW-UCLA has views 1, 2 and 3")
    data = load_json(path)
    if not isinstance(data, dict) or "skeletons" not in data:
        raise ClipProblem(f"{path.name}: no 'skeletons' key")
    skeletons = numbers(data["skeletons"], f"{path.name}: skeletons")
    if skeletons.size == 0:
        raise ClipProblem(f"{path.name}: 'skeletons' holds no frames")
    if skeletons.ndim != 3 or skeletons.shape[1:] != (20, 3):
        raise ClipProblem(f"{path.name}: skeletons of shape {skeletons.shape}; expected T x 20 x 3")
    split = "train" if view in TRAIN_VIEWS else "val"
    return Clip(path.stem, skeletons[None].astype(np.float32), None, _LABEL[action], split)


def write_clips(clips: Iterable[Clip], out_dir: Path, layout: Layout) -> None:
    """Write 3-D clips (named as the data set names them) as ``out_dir/<name>.json``; only the
    first person is written (NW-UCLA has one)."""
    out_dir = Path(out_dir)
    for clip in clips:
        check_for_writing(clip, layout, channels=(3,))
        match = _NAME.match(clip.name)
        if match is None or int(match["a"]) not in _LABEL:
            raise FormatError(f"clip {clip.name!r}: not an NW-UCLA name of one of its actions")
        kp = np.asarray(clip.keypoint[0], dtype=np.float32).astype(str).astype(np.float64)
        body = {"file_name": clip.name, "skeletons": kp.tolist(),
                "label": _LABEL[int(match["a"])] + 1}  # fmt: skip
        atomic_write_text(out_dir / f"{clip.name}.json", json.dumps(body))
