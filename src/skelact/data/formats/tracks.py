"""Who is who across frames: presence, motion energy and nearest-centre track matching.

OpenPose lists the people of each frame in no stable order, and a tracker's CSV numbers its
people arbitrarily; the project's convention (from NTU) is that body 0 is the most active person,
because normalisation centres every body on body 0 and the models see the bodies in order. So
the readers of those formats match detections into tracks and order the tracks by (presence
weighted) motion energy here, and the importer keeps the first ``num_persons``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "Detection",
    "assemble_tracks",
    "match_tracks",
    "motion_energy",
    "order_by_energy",
    "present_joints",
]

#: One person in one frame: coordinates ``(V, C)`` and scores ``(V,)`` (0 where absent).
Detection = tuple[np.ndarray, np.ndarray]


def present_joints(keypoint: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """``(..., V)`` bool: present = a coordinate is non-zero and the score (if any) is not 0."""
    present = np.any(keypoint != 0, axis=-1)
    if score is not None:
        present &= score != 0
    return present


def written_confidence(
    keypoint: np.ndarray, score: np.ndarray | None, dtype: type | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What a format writer emits per joint: ``(present, confidence)``, the confidence being the
    clip's score where the joint is present (1 for a clip without scores) and 0 where absent.
    ``dtype`` None keeps the score's own dtype (float64 for a clip without scores)."""
    present = present_joints(keypoint, score)
    if score is None:
        return present, present.astype(dtype or np.float64)
    conf = np.where(present, score, 0.0)
    return present, conf if dtype is None else conf.astype(dtype)


def motion_energy(keypoint: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per person of ``(M, T, V, C)``: sum over channels of the std of its present joints.

    NTU's rule (the std over a body's non-empty frames) restricted to present joints: a 2-D
    detector drops single joints, and counting those zeros would make a flickering wrist look
    like motion.
    """
    energy = np.zeros(len(keypoint))
    for m, mask in enumerate(present):
        values = keypoint[m][mask]  # (N, C)
        if len(values):
            energy[m] = values.std(axis=0).sum()
    return energy


def order_by_energy(keypoint: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """Person indices, most active first: by motion energy times the share of frames seen.

    The weight is what NTU's Kinect bodies did not need: a 2-D detector's false positive
    becomes a track of a few frames whose jumpy std would otherwise outrank the performer
    seen throughout, and body 0 is what every body is centred on. Equal weighted energies go by
    the number of present joints (so an empty person never precedes one seen standing still),
    then keep their order.
    """
    present = present_joints(keypoint, score)
    seen_frames = present.any(axis=-1).mean(axis=-1) if keypoint.shape[1] else 0.0
    energy = motion_energy(keypoint, present) * seen_frames
    seen = present.reshape(len(keypoint), -1).sum(axis=1)
    return np.lexsort((np.arange(len(keypoint)), -seen, -energy))


def match_tracks(
    frames: Sequence[Sequence[Detection]], num_joints: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Detections per frame -> ``(P, T, V, C)`` keypoints and ``(P, T, V)`` scores, one per track.

    Each detection joins the track whose last known centre (mean of its present joints) is
    nearest, closest pairs first; a detection left over starts a new track. The tracks come out
    most active first. A detection without any present joint carries no position and is ignored.
    """
    last: list[np.ndarray] = []  # per track: its last centre
    members: list[dict[int, Detection]] = []  # per track: frame -> detection
    for t, dets in enumerate(frames):
        kept = [d for d in dets if np.any(d[1] != 0)]
        if not kept:
            continue
        centres = np.stack([coords[score != 0].mean(axis=0) for coords, score in kept])
        free_tracks, free_dets = set(range(len(last))), set(range(len(kept)))
        if last:
            dist = np.linalg.norm(np.stack(last)[:, None] - centres[None], axis=-1)
            for flat in np.argsort(dist, axis=None, kind="stable"):
                track, det = divmod(int(flat), len(kept))
                if track in free_tracks and det in free_dets:
                    free_tracks.discard(track)
                    free_dets.discard(det)
                    members[track][t] = kept[det]
                    last[track] = centres[det]
        for det in sorted(free_dets):
            members.append({t: kept[det]})
            last.append(centres[det])
    keypoint = np.zeros((len(members), len(frames), num_joints, channels), np.float32)
    score = np.zeros((len(members), len(frames), num_joints), np.float32)
    for p, track in enumerate(members):
        for t, (coords, scores) in track.items():
            keypoint[p, t], score[p, t] = coords, scores
    order = order_by_energy(keypoint, score)
    return keypoint[order], score[order]


def assemble_tracks(
    frames: Sequence[Sequence[tuple[Detection, int | None]]], num_joints: int, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`match_tracks`, but detections may carry the estimator's own track id.

    The ids are used when every detection has one and no frame holds one id twice; otherwise
    (no tracker ran, or a tracker-less estimator writes the same id for everyone, as AlphaPose
    writes 0) the people are matched by position. Ids say who is who, not who matters, so the
    tracks still come out most active first.
    """
    ids = [[i for _, i in dets] for dets in frames]
    usable = all(i is not None for f in ids for i in f) and all(len(set(f)) == len(f) for f in ids)
    if not usable:
        return match_tracks([[d for d, _ in dets] for dets in frames], num_joints, channels)
    order = sorted({i for f in ids for i in f})  # type: ignore[type-var]
    slot = {track: p for p, track in enumerate(order)}
    keypoint = np.zeros((len(order), len(frames), num_joints, channels), np.float32)
    score = np.zeros((len(order), len(frames), num_joints), np.float32)
    for t, dets in enumerate(frames):
        for (coords, scores), track in dets:
            keypoint[slot[track], t], score[slot[track], t] = coords, scores
    ranked = order_by_energy(keypoint, score)
    return keypoint[ranked], score[ranked]
