"""Normalisation on import: NTU's exact rule for raw ntu25, body centre + size, image frame."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from skelact.data.normalise import NormaliseError, is_prenormalised_ntu, normalise
from skelact.data.prenorm import SPINE_MID, pre_normalise
from skelact.layouts import get_layout

COCO = get_layout("coco17")
NTU = get_layout("ntu25")


def _raw_ntu(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = rng.normal(0, 0.3, (2, 20, 25, 3)).astype(np.float32) + np.float32([0.2, 0.1, 3.0])
    kp[1, 15:] = 0  # body 1 leaves
    return kp


def _pixels(seed: int = 0, m: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(100, 900, (m, 12, COCO.num_joints, 2)).astype(np.float32)


def test_raw_ntu25_gets_the_exact_ntu_prenormalisation():
    kp = _raw_ntu()
    out, rule = normalise(kp, NTU)
    assert rule == "ntu" and out.dtype == np.float32
    np.testing.assert_array_equal(out, pre_normalise(kp))
    assert is_prenormalised_ntu(out) and not out[0, :, SPINE_MID].any()


def test_prenormalised_ntu25_is_kept_bit_for_bit():
    once = pre_normalise(_raw_ntu(1))
    out, rule = normalise(once, NTU)
    assert rule == "prenormalised"
    np.testing.assert_array_equal(out, once)


def test_body_rule_centres_on_body0_centre_and_scales_by_bone_length():
    kp = _pixels()
    out, rule = normalise(kp, COCO)
    assert rule == "body"
    np.testing.assert_allclose(out[0, :, COCO.center].mean(axis=0), 0, atol=1e-5)
    child, parent = np.array(COCO.bones).T
    bones = np.linalg.norm(out[0][:, child] - out[0][:, parent], axis=-1)
    assert np.median(bones.mean(axis=1)) == pytest.approx(1.0, rel=1e-5)


def test_body_rule_ignores_where_and_how_large_the_body_is():
    kp = _pixels(2)
    moved = kp * np.float32(3.5) + np.float32([400, -70])
    np.testing.assert_allclose(normalise(moved, COCO)[0], normalise(kp, COCO)[0], atol=1e-5)


def test_body_rule_keeps_absent_joints_zero_and_ignores_them():
    kp = _pixels(3)
    score = np.ones(kp.shape[:3], np.float32)
    kp[0, 4, 7] = 0  # absent by coordinates
    score[1, 2, 3] = 0  # absent by score (coordinates left in on purpose)
    out, _ = normalise(kp, COCO, score=score)
    assert not out[0, 4, 7].any() and not out[1, 2, 3].any()
    # a far-away absent joint does not move the centre or the size
    far = kp.copy()
    far[1, 2, 3] = 1e6
    np.testing.assert_array_equal(normalise(far, COCO, score=score)[0], out)


def test_body_rule_without_a_visible_centre_uses_the_present_joints():
    kp = _pixels(4, m=1)
    kp[0, :, COCO.center] = 0
    out, _ = normalise(kp, COCO)
    np.testing.assert_allclose(out[0][np.any(out[0] != 0, axis=-1)].mean(axis=0), 0, atol=1e-5)


def test_body_rule_refuses_a_body_without_size_or_joints():
    with pytest.raises(NormaliseError, match="no joint present"):
        normalise(np.zeros((1, 3, 17, 2), np.float32), COCO)
    lone = np.zeros((1, 3, 17, 2), np.float32)
    lone[0, :, 0] = 5  # only the nose: no bone with two ends
    with pytest.raises(NormaliseError, match="no body size"):
        normalise(lone, COCO)


def test_image_rule_maps_the_frame_to_minus_one_one():
    kp = np.zeros((1, 1, 17, 2), np.float32)
    kp[0, 0, 0] = [200, 100]  # centre of a 200 x 400 (h x w) frame
    kp[0, 0, 1] = [400, 0]  # top-right corner
    out, rule = normalise(kp, COCO, mode="image", img_shape=(200, 400))
    assert rule == "image"
    assert out[0, 0, 0].tolist() == [0, 0] and out[0, 0, 1].tolist() == [1, -0.5]
    assert not out[0, 0, 2:].any()


def test_image_rule_needs_2d_and_a_frame_size():
    with pytest.raises(NormaliseError, match="--img-shape"):
        normalise(_pixels(), COCO, mode="image")
    with pytest.raises(NormaliseError, match="2-D"):
        normalise(_raw_ntu(), NTU, mode="image", img_shape=(10, 10))


def test_a_3d_align_rule_other_than_ntu25_is_refused():
    other = dataclasses.replace(NTU, name="my_kinect")
    with pytest.raises(NormaliseError, match="my_kinect declares a 3-D 'align'"):
        normalise(_raw_ntu(), other)
    no_align = dataclasses.replace(NTU, name="my_kinect", align=None)
    assert normalise(_raw_ntu(), no_align)[1] == "body"
