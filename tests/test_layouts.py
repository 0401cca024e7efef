"""Layouts as data: the built-ins, the YAML loader and its refusals, and each layout's graph."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import rig_yaml
from skelact.layouts import BUILTIN_LAYOUTS, NTU25, LayoutError, get_layout, load_layout
from skelact.models.graph import layout_adjacency


def test_ntu25_is_the_reference_wiring() -> None:
    assert NTU25.num_joints == 25
    assert NTU25.index("right_wrist") == 10
    assert NTU25.center == NTU25.index("spine_shoulder") == 20
    assert NTU25.mirror == (
        0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22,
    )  # fmt: skip
    assert NTU25.align is not None
    assert (NTU25.align.origin, NTU25.align.spine, NTU25.align.shoulders) == (1, (0, 1), (4, 8))
    with pytest.raises(LayoutError, match="unknown joint 'right_wirst'.*valid names: spine_base"):
        NTU25.index("right_wirst")


@pytest.mark.parametrize("name", BUILTIN_LAYOUTS)
def test_builtin_layouts_are_trees_with_connected_normalised_graphs(name: str) -> None:
    layout = get_layout(name)
    assert layout.name == name
    children = sorted(c for c, _ in layout.bones)
    assert children == sorted(set(range(layout.num_joints)) - {layout.center})
    for j, m in enumerate(layout.mirror):  # an involution pairing left_* with right_*
        assert layout.mirror[m] == j
        if layout.joints[j].startswith("left_"):
            assert layout.joints[m] == "right_" + layout.joints[j][5:]
    a = layout_adjacency(layout)
    v = layout.num_joints
    assert a.shape == (3, v, v)
    np.testing.assert_array_equal(a[0], np.eye(v))
    for part in a[1:]:
        sums = part.sum(0)
        np.testing.assert_allclose(sums[sums > 0], 1.0)  # column-normalised
    reach = ((a.sum(0) + a.sum(0).T) > 0).astype(np.int64)
    closure = np.linalg.matrix_power(reach, v) > 0
    assert closure.all(), f"{name}: graph is not connected"


def test_expected_joint_counts() -> None:
    counts = {n: get_layout(n).num_joints for n in BUILTIN_LAYOUTS}
    assert counts == {"ntu25": 25, "coco17": 17, "openpose25": 25, "mediapipe33": 33,
                      "openpose_coco18": 18, "halpe26": 26, "kinect_v1_20": 20}  # fmt: skip
    assert get_layout("openpose25").joints[:2] == ("nose", "neck")
    assert get_layout("coco17").joints[5:7] == ("left_shoulder", "right_shoulder")


RIG = rig_yaml()  # rig5: chest, head, pelvis, l_hand, r_hand


def test_user_layout_file(tmp_path) -> None:
    path = tmp_path / "rig.yaml"
    path.write_text(RIG)
    layout = get_layout(str(path))
    assert layout.name == "rig5" and layout.num_joints == 5
    assert layout.mirror == (0, 1, 2, 4, 3)
    assert layout.outward[0] == (0, 1)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("[r_hand, chest]", "[r_hand, elbow]"), r"bones\[3\]: unknown joint 'elbow'"),
        (("[r_hand, chest]", "[r_hand, l_hand]\n  - [l_hand, r_hand]"), "two parents"),
        (("  - [r_hand, chest]\n", ""), "joint 'r_hand' is disconnected"),
        (("[head, chest]", "[head, head]"), "'head' is its own parent"),
        (("[pelvis, chest]", "[chest, pelvis]"), "centre 'chest' cannot have a parent"),
        (("center: chest", "centre: chest"), r"unknown key\(s\) \['centre'\]"),
        (("name: rig5\n", "name: rig5\nname: again\n"), "duplicate key 'name'"),
        (("joints: [chest,", "joints: [chest, chest,"), "'chest' is listed twice"),
    ],
)
def test_bad_layout_files_are_refused_with_the_reason(tmp_path, edit, message) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(RIG.replace(*edit))
    with pytest.raises(LayoutError, match=message):
        load_layout(path)


def test_cycle_is_named(tmp_path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("name: c\njoints: [a, b, c, d]\ncenter: a\nbones: [[b, a], [c, d], [d, c]]\n")
    with pytest.raises(LayoutError, match="cycle: (c -> d -> c|d -> c -> d)"):
        load_layout(path)


def test_unknown_layout_name() -> None:
    with pytest.raises(LayoutError, match="unknown layout 'coco18'; built in: ntu25, coco17"):
        get_layout("coco18")
