"""Skeleton layouts as data: joint names, bones towards a centre joint, left/right pairs.

Every consumer of "how the body is wired" (the DGCN graph, pre-normalisation, the synthetic
generator, importers, deployment metadata) asks for a :class:`Layout` by name, so a new keypoint
set is described once, in a small YAML file, and every stage works on it. Built in (one YAML file
each beside this module): ``ntu25`` (Kinect v2, NTU RGB+D), ``coco17`` (COCO keypoints: HRNet,
RTMPose, ViTPose, YOLO-pose), ``openpose25`` (OpenPose BODY_25), ``mediapipe33`` (BlazePose),
``openpose_coco18`` (OpenPose's COCO model; Kinetics-Skeleton), ``halpe26`` (AlphaPose / RTMPose
Halpe models) and ``kinect_v1_20`` (Kinect v1; NW-UCLA). ``skelact layouts`` lists them
(:data:`LAYOUT_NOTES`).

A layout file::

    name: my_rig                       # what checkpoints and pickles record
    joints: [pelvis, chest, head, ...] # index order of the keypoint arrays
    center: chest                      # the graph's root; 2-D normalisation centres on it
    bones:                             # (child, parent) pairs pointing towards the centre
      - [pelvis, chest]
      - [head, chest]
    left_right: [[l_hand, r_hand]]     # optional; else matched by left_/right_ name prefixes
    align:                             # optional: 3-D rotation alignment (NTU's rule)
      origin: chest
      spine: [pelvis, chest]           # turned onto +z
      shoulders: [l_shoulder, r_shoulder]   # then turned onto +x

The bones must form one tree rooted at the centre: every other joint has exactly one parent and
reaches the centre. An unknown joint, a second parent, a cycle or a joint with no path to the
centre is refused with the joint named, because a wrong graph trains silently but badly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from skelact.errors import SkelactError

__all__ = [
    "BUILTIN_LAYOUTS",
    "LAYOUT_NOTES",
    "NTU25",
    "Alignment",
    "Layout",
    "LayoutError",
    "get_layout",
    "is_builtin",
    "joint_count_hint",
    "layout_from_dict",
    "layout_table",
    "layout_to_dict",
    "load_layout",
]

_HERE = Path(__file__).resolve().parent
BUILTIN_LAYOUTS: tuple[str, ...] = (
    "ntu25", "coco17", "openpose25", "mediapipe33", "openpose_coco18", "halpe26", "kinect_v1_20",
)  # fmt: skip
#: Per built-in layout: (the coordinates its sources give, who gives it), for ``skelact layouts``.
LAYOUT_NOTES: dict[str, tuple[str, str]] = {
    "ntu25": ("3-D (metres) or 2-D", "Kinect v2: NTU RGB+D 60/120"),
    "coco17": ("2-D", "COCO keypoints: MMPose/RTMPose, YOLO-pose, AlphaPose COCO models"),
    "openpose25": ("2-D", "OpenPose BODY_25"),
    "mediapipe33": ("2-D or 3-D", "MediaPipe BlazePose"),
    "openpose_coco18": ("2-D", "OpenPose COCO model; Kinetics-Skeleton (ST-GCN)"),
    "halpe26": ("2-D", "Halpe full body: AlphaPose and RTMPose Halpe/Body8 models"),
    "kinect_v1_20": ("3-D (metres)", "Kinect v1: NW-UCLA"),
}


class LayoutError(SkelactError, ValueError):
    """A layout name is unknown or a layout file describes no valid skeleton tree."""


@dataclass(frozen=True)
class Alignment:
    """Joints of NTU's 3-D pre-normalisation: centre on ``origin``, then two rotations."""

    origin: int
    spine: tuple[int, int]  # (from, to): the vector turned onto +z
    shoulders: tuple[int, int]  # (from, to): then turned onto +x


@dataclass(frozen=True)
class Layout:
    """One keypoint layout; indices are 0-based positions in the keypoint arrays."""

    name: str
    joints: tuple[str, ...]
    center: int
    bones: tuple[tuple[int, int], ...]  # (child, parent), towards the centre
    left_right: tuple[tuple[int, int], ...] = ()
    align: Alignment | None = None
    source: str = field(default="", compare=False)  # the file it came from

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def inward(self) -> tuple[tuple[int, int], ...]:
        """Bones as (child, parent) pairs, i.e. edges pointing to the centre."""
        return self.bones

    @property
    def outward(self) -> tuple[tuple[int, int], ...]:
        """Bones as (parent, child) pairs, pointing away from the centre."""
        return tuple((p, c) for c, p in self.bones)

    @property
    def parents(self) -> tuple[int, ...]:
        """Parent of every joint (the centre is its own parent)."""
        parent = list(range(self.num_joints))
        for child, par in self.bones:
            parent[child] = par
        return tuple(parent)

    @property
    def mirror(self) -> tuple[int, ...]:
        """Left/right counterpart of every joint (itself when it has none)."""
        out = list(range(self.num_joints))
        for a, b in self.left_right:
            out[a], out[b] = b, a
        return tuple(out)

    def index(self, joint: str) -> int:
        """Index of a joint by name; the error lists the valid names."""
        try:
            return self.joints.index(joint)
        except ValueError:
            valid = ", ".join(self.joints)
            raise LayoutError(
                f"layout {self.name}: unknown joint {joint!r}; valid names: {valid}"
            ) from None


def get_layout(name_or_path: str | os.PathLike[str]) -> Layout:
    """A built-in layout by name, or a layout YAML file by path."""
    text = os.fspath(name_or_path)
    if text in BUILTIN_LAYOUTS:
        return _builtin(text)
    if text.endswith((".yaml", ".yml")) or os.sep in text or "/" in text:
        return load_layout(text)
    raise LayoutError(
        f"unknown layout {text!r}; built in: {', '.join(BUILTIN_LAYOUTS)} (or the path of a "
        "layout .yaml file)"
    )


@cache
def _builtin(name: str) -> Layout:
    return load_layout(_HERE / f"{name}.yaml")


def load_layout(path: str | os.PathLike[str]) -> Layout:
    """Read and check one layout YAML file (see the module docstring for its keys)."""
    from skelact import yamlfile  # PyYAML only when a layout file is read

    raw = yamlfile.read_yaml(path, LayoutError, what="layout file")
    return layout_from_dict(raw, where=str(path))


_KEYS = {"name", "joints", "center", "bones", "left_right", "align"}


def layout_from_dict(raw: Any, where: str = "layout") -> Layout:
    """Build and validate a :class:`Layout` from its parsed YAML mapping."""
    if not isinstance(raw, dict):
        raise LayoutError(f"{where}: a layout is a mapping with keys {sorted(_KEYS)}")
    unknown = sorted(map(str, set(raw) - _KEYS))
    if unknown:
        raise LayoutError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(_KEYS)}")
    missing = [k for k in ("name", "joints", "center", "bones") if k not in raw]
    if missing:
        raise LayoutError(f"{where}: missing key(s) {missing}")
    name = raw["name"]
    if not isinstance(name, str) or not name.strip():
        raise LayoutError(f"{where}: name: must be a non-empty string")
    joints = raw["joints"]
    if (
        not isinstance(joints, list)
        or len(joints) < 2
        or not all(isinstance(j, str) and j for j in joints)
    ):
        raise LayoutError(f"{where}: joints: must be a list of at least 2 joint names")
    seen: set[str] = set()
    for j in joints:
        if j in seen:
            raise LayoutError(f"{where}: joints: {j!r} is listed twice")
        seen.add(j)
    index = {j: i for i, j in enumerate(joints)}

    def joint(value: Any, key: str) -> int:
        if not isinstance(value, str) or value not in index:
            raise LayoutError(f"{where}: {key}: unknown joint {value!r}")
        return index[value]

    def pair(value: Any, key: str) -> tuple[int, int]:
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise LayoutError(f"{where}: {key}: expected a [joint, joint] pair, got {value!r}")
        return joint(value[0], key), joint(value[1], key)

    center = joint(raw["center"], "center")
    if not isinstance(raw["bones"], list):
        raise LayoutError(f"{where}: bones: must be a list of [child, parent] pairs")
    bones = tuple(pair(b, f"bones[{i}]") for i, b in enumerate(raw["bones"]))
    _check_tree(joints, center, bones, where)
    if "left_right" in raw:
        if not isinstance(raw["left_right"], list):
            raise LayoutError(f"{where}: left_right: must be a list of [left, right] pairs")
        left_right = tuple(pair(p, f"left_right[{i}]") for i, p in enumerate(raw["left_right"]))
    else:
        left_right = _pairs_by_name(joints)
    align = _alignment(raw.get("align"), where, pair, joint)
    return Layout(name.strip(), tuple(joints), center, bones, left_right, align, source=where)


def layout_to_dict(layout: Layout) -> dict[str, Any]:
    """The YAML mapping of ``layout`` (joints by name), which :func:`layout_from_dict` reads back.

    Why: a model trained on a user's layout file must be rebuildable where that file is absent,
    so checkpoints keep this plain-data copy (lists and strings only: it survives
    ``torch.load(weights_only=True)``, JSON and YAML alike).
    """
    names = layout.joints
    out: dict[str, Any] = {
        "name": layout.name,
        "joints": list(names),
        "center": names[layout.center],
        "bones": [[names[c], names[p]] for c, p in layout.bones],
        "left_right": [[names[a], names[b]] for a, b in layout.left_right],
    }
    if layout.align is not None:
        out["align"] = {
            "origin": names[layout.align.origin],
            "spine": [names[j] for j in layout.align.spine],
            "shoulders": [names[j] for j in layout.align.shoulders],
        }
    return out


def is_builtin(layout: Layout) -> bool:
    """Whether ``layout`` is exactly the built-in of its name (so the name alone rebuilds it)."""
    return layout.name in BUILTIN_LAYOUTS and _builtin(layout.name) == layout


def _check_tree(
    joints: list[str], center: int, bones: tuple[tuple[int, int], ...], where: str
) -> None:
    parent: dict[int, int] = {}
    for child, par in bones:
        if child == par:
            raise LayoutError(f"{where}: bones: {joints[child]!r} is its own parent")
        if child == center:
            raise LayoutError(
                f"{where}: bones: the centre {joints[center]!r} cannot have a parent "
                f"({joints[par]!r}); bones point towards the centre"
            )
        if child in parent:
            raise LayoutError(
                f"{where}: bones: {joints[child]!r} has two parents ({joints[parent[child]]!r} "
                f"and {joints[par]!r}); each joint hangs off exactly one"
            )
        parent[child] = par
    for j in range(len(joints)):
        if j == center:
            continue
        if j not in parent:
            raise LayoutError(
                f"{where}: joint {joints[j]!r} is disconnected (no bone to its parent)"
            )
        path, node = [j], j
        while node != center:
            node = parent.get(node, -1)
            if node == -1:
                raise LayoutError(
                    f"{where}: joint {joints[j]!r} does not reach the centre {joints[center]!r}"
                )
            if node in path:
                cycle = " -> ".join(joints[n] for n in path[path.index(node) :] + [node])
                raise LayoutError(f"{where}: bones form a cycle: {cycle}")
            path.append(node)


def _pairs_by_name(joints: list[str]) -> tuple[tuple[int, int], ...]:
    index = {j: i for i, j in enumerate(joints)}
    return tuple(
        (i, index["right_" + j[len("left_") :]])
        for i, j in enumerate(joints)
        if j.startswith("left_") and "right_" + j[len("left_") :] in index
    )


def _alignment(raw: Any, where: str, pair: Any, joint: Any) -> Alignment | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"origin", "spine", "shoulders"}:
        raise LayoutError(f"{where}: align: needs exactly the keys origin, spine, shoulders")
    return Alignment(
        joint(raw["origin"], "align.origin"),
        pair(raw["spine"], "align.spine"),
        pair(raw["shoulders"], "align.shoulders"),
    )


def joint_count_hint(num_joints: int) -> str:
    """What to pass as the layout for data with ``num_joints`` joints, for an error message."""
    names = [n for n in BUILTIN_LAYOUTS if _builtin(n).num_joints == num_joints]
    if names:
        return f"use --layout {' or '.join(names)} (data.layout) for {num_joints}-joint data"
    return f"no built-in layout has {num_joints} joints: give a layout .yaml file with them"


def layout_table() -> list[dict[str, Any]]:
    """Every built-in layout as ``{name, joints, center, dims, source}`` rows, in listing order."""
    rows = []
    for name in BUILTIN_LAYOUTS:
        layout = _builtin(name)
        dims, source = LAYOUT_NOTES[name]
        rows.append(
            {
                "name": name,
                "joints": layout.num_joints,
                "center": layout.joints[layout.center],
                "dims": dims,
                "source": source,
            }
        )
    return rows


NTU25: Layout = _builtin("ntu25")
