"""The joint layout: names resolve, and the tables derived from names keep their NTU values."""

from __future__ import annotations

import pytest

from skelact import skeleton


def test_joint_index_and_unknown_names() -> None:
    assert skeleton.joint_index("right_wrist") == 10
    assert skeleton.NUM_JOINTS == len(skeleton.JOINT_NAMES) == len(skeleton.REST_POSE)
    with pytest.raises(KeyError, match="unknown joint 'right_wirst'; valid names: spine_base"):
        skeleton.joint_index("right_wirst")


def test_tables_built_from_names_keep_the_ntu_indices() -> None:
    # Pinned from the first version, where these were written as raw indices.
    assert skeleton.MIRROR == (
        0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22,
    )  # fmt: skip
    assert skeleton.LEAF_JOINTS == (3, 15, 19, 21, 22, 23, 24)
    assert (skeleton.SPINE_BASE, skeleton.SPINE_MID, skeleton.CENTER_JOINT) == (0, 1, 20)
    assert (skeleton.LEFT_SHOULDER, skeleton.RIGHT_SHOULDER) == (4, 8)


def test_mirror_swaps_sides_and_bones_span_the_body() -> None:
    names = skeleton.JOINT_NAMES
    for j, m in enumerate(skeleton.MIRROR):
        assert skeleton.MIRROR[m] == j
        assert names[m] == names[j].replace("left_", "@").replace("right_", "left_").replace(
            "@", "right_"
        )
    children = [c for c, _ in skeleton.INWARD_BONES]
    assert sorted(children + [skeleton.CENTER_JOINT]) == list(range(skeleton.NUM_JOINTS))
