"""Synthetic data in the outside formats: ``skelact synth --format <an import format>``.

The samples are those of the NTU generator (same classes, subjects, cameras, names and seeds),
retargeted to the chosen layout (:mod:`~skelact.data.synth.retarget`). In 3-D they stay in
camera space (metres) without scores. In 2-D they are projected through the colour camera of
the ``.skeleton`` files (1920 x 1080 pixels) with a confidence per joint, as a 2-D pose
estimator gives: high for tracked joints, lower far from the camera and much lower for the
joints the generator marks as occluded; a few joints (more of the occluded ones) are missed
(score 0, coordinates 0), as are joints outside the image.

What is written in ``out_dir``:

* ``openpose``: ``<clip>/<clip>_<frame:012d>_keypoints.json`` (2-D only); besides the
  performers, the short-lived false bodies of the generator appear as extra people, as false
  detections do;
* ``csv``: ``clips/<clip>.csv`` (long form; a folder of its own, so that ``labels.csv`` is not
  read as a clip);
* both with ``labels.csv`` (``clip,label,split``: the NTU action name of the class and the
  cross-subject split), so ``skelact import --from openpose DIR --labels DIR/labels.csv
  --split-by split`` (or ``--from csv DIR/clips``) needs nothing else;
* ``npz``: ``synth.npz`` (CTR-GCN / SGN layout: cross-subject train part and test part, labels
  action - 1, at least 300 frames);
* ``pyskl``: ``synth.pkl`` (``{'split': {'xsub_train', 'xsub_val'}, 'annotations'}``, labels
  action - 1, with ``keypoint_score`` and ``img_shape`` in 2-D);

* ``mmpose``: ``clips/<clip>.json`` (the inferencer's video prediction file), ``yolo``:
  ``labels/<clip>_<frame>.txt`` (Ultralytics' ``save_txt`` with ``save_conf``, fractions of the
  1920 x 1080 frame), ``alphapose``: ``clips/<clip>.json`` (results with ``idx`` track ids); all
  three with passers-by and ``labels.csv``;
* ``kinetics``: the Kinetics-Skeleton release layout (``kinetics_train/``, ``kinetics_val/`` and
  their label files; the cross-subject split; up to 5 people per frame, passers-by included);
* ``nwucla``: ``all_sqe/a<action>_s<subject>_e<sample>_v<camera>.json`` (at most 10 classes, the
  NTU actions standing in for NW-UCLA's ten; NTU's camera is the view, so view 3 is val);

and ``synth.json``, the manifest. Every clip depends only on (seed, action, sample index), so the
files are deterministic. One process writes them (``workers`` applies to ``.skeleton`` files).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from skelact.atomic import atomic_write_text
from skelact.data import ntu
from skelact.data.formats import (
    FORMATS,
    Clip,
    alphapose,
    kinetics,
    mmpose,
    npz,
    nwucla,
    openpose,
    pyskl,
    yolo,
)
from skelact.data.formats import csv as csv_format
from skelact.data.synth.bodies import Body, generate_sample
from skelact.data.synth.motions import class_program
from skelact.data.synth.plan import (
    SampleSpec,
    SynthError,
    split_counts,
    two_person_actions,
)
from skelact.data.synth.retarget import SYNTH_LAYOUTS, dominant_source, retarget
from skelact.data.synth.stage import SynthResult, SynthSettings, plan_output
from skelact.data.synth.writer import COLOR_BASELINE, COLOR_CX, COLOR_CY, COLOR_F
from skelact.layouts import Layout, get_layout

__all__ = ["IMAGE_SHAPE", "FormatSettings", "synth_clip", "write_synthetic"]

#: (height, width) of the colour camera the 2-D coordinates are projected to.
IMAGE_SHAPE = (1080, 1920)
LABELS_NAME = "labels.csv"
_STALE = {"openpose": "*/*_keypoints.json", "csv": "clips/*.csv", "mmpose": "clips/*.json",
          "yolo": "labels/*.txt", "alphapose": "clips/*.json", "kinetics": "kinetics_*/*.json",
          "nwucla": f"{nwucla.FOLDER}/*.json"}  # fmt: skip
#: Formats written with a labels.csv (their files carry no labels).
_LABELLESS = ("openpose", "csv", "mmpose", "yolo", "alphapose")
#: Formats with people besides the performers (false detections), as estimators give.
_PASSERS_BY = ("openpose", "mmpose", "yolo", "alphapose", "kinetics")
#: Formats of one layout and dimension: (layout, dims).
_FIXED = {"kinetics": ("openpose_coco18", 2), "nwucla": ("kinect_v1_20", 3)}
_TWO_D = ("openpose", "yolo", "alphapose")


@dataclass(frozen=True)
class FormatSettings:
    """Which outside format, layout and coordinate count ``skelact synth --format`` writes."""

    format: str
    layout: str = "coco17"
    dims: int = 2

    def check(self) -> None:
        if self.format not in FORMATS:
            raise SynthError(f"unknown format {self.format!r}; choose from {', '.join(FORMATS)}")
        if self.layout not in SYNTH_LAYOUTS:
            raise SynthError(
                f"synth cannot write layout {self.layout!r}; choose from {', '.join(SYNTH_LAYOUTS)}"
            )
        if self.dims not in (2, 3):
            raise SynthError(f"dims must be 2 or 3, got {self.dims}")
        if self.format in _TWO_D and self.dims != 2:
            raise SynthError(f"{self.format} files hold 2-D keypoints only: use --dims 2")
        fixed = _FIXED.get(self.format)
        if fixed is not None and (self.layout, self.dims) != fixed:
            raise SynthError(f"{self.format} is {fixed[1]}-D layout {fixed[0]}: use --layout "
                             f"{fixed[0]} --dims {fixed[1]}")  # fmt: skip


def _dataset(num_classes: int) -> str:
    return "ntu60" if num_classes <= 60 else "ntu120"


def _split(spec: SampleSpec, num_classes: int) -> str:
    return ntu.split_of(ntu.parse_sample_name(spec.name), _dataset(num_classes), "xsub")


def _ucla_name(spec: SampleSpec) -> str:
    """The NW-UCLA file name of a sample: action by class, subject, sample index, camera."""
    action = list(nwucla.ACTIONS)[spec.action - 1]
    return nwucla.clip_name(action, spec.subject, spec.index, spec.camera)


def _project(
    xyz: np.ndarray, present: np.ndarray, state: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space ``(M, T, V, 3)`` -> pixels ``(M, T, V, 2)`` and scores ``(M, T, V)``."""
    z = np.maximum(xyz[..., 2], 0.1)
    uv = np.stack(
        [
            COLOR_CX + COLOR_F * (xyz[..., 0] + COLOR_BASELINE) / z,
            COLOR_CY - COLOR_F * xyz[..., 1] / z,
        ],
        axis=-1,
    )
    m, t, v = z.shape
    occluded = state == 1.0
    score = rng.uniform(0.82, 0.97, (m, 1, 1)) - 0.04 * (z - 2.5)
    score = score - np.abs(rng.normal(0.0, 0.05, (m, t, v)))
    score = np.clip(np.where(occluded, 0.45 * score, score), 0.05, 1.0)
    missed = rng.random((m, t, v)) < np.where(occluded, 0.25, 0.01)
    height, width = IMAGE_SHAPE
    inside = (uv[..., 0] >= 0) & (uv[..., 0] < width) & (uv[..., 1] >= 0) & (uv[..., 1] < height)
    seen = present[..., None] & ~missed & inside & (xyz[..., 2] > 0.1)
    return np.where(seen[..., None], uv, 0.0), np.where(seen, score, 0.0)


def synth_clip(
    spec: SampleSpec, settings: SynthSettings, fmt: FormatSettings, extra_people: bool = False
) -> Clip:
    """One synthetic sample as a :class:`Clip` of ``fmt.layout`` (int label = action - 1).

    ``extra_people`` adds the generator's false bodies after the performers.
    """
    s = settings
    bodies = generate_sample(spec, s.num_classes, s.seed, (s.frames_min, s.frames_max), s.noise)
    performers = 2 if class_program(spec.action, s.num_classes).two_person else 1
    people: list[Body] = bodies if extra_people else bodies[:performers]
    xyz = np.stack([retarget(b.xyz, fmt.layout) for b in people])
    present = np.stack([b.present for b in people])
    split = _split(spec, s.num_classes)
    if fmt.dims == 3:
        keypoint = np.where(present[..., None, None], xyz, 0.0).astype(np.float32)
        return Clip(spec.name, keypoint, label=spec.action - 1, split=split)
    state = np.stack([b.state for b in people])[..., dominant_source(fmt.layout)]
    rng = np.random.default_rng([s.seed, spec.action, spec.index, 0x5C0E5])
    uv, score = _project(xyz, present, state, rng)
    return Clip(spec.name, uv.astype(np.float32), score.astype(np.float32),
                spec.action - 1, split, IMAGE_SHAPE)  # fmt: skip


def _clear(out: Path, fmt: str, clean: bool) -> None:
    """Refuse (or with ``clean`` remove) clip files of an earlier data set in ``out``."""
    pattern = _STALE.get(fmt)
    stale = sorted(out.glob(pattern)) if pattern else []
    if stale and not clean:
        raise SynthError(
            f"{out} already holds {len(stale)} {fmt} clip files (e.g. "
            f"{stale[0].relative_to(out)}) that would mix with the new data set; use another "
            "directory or --clean"
        )
    for path in stale:
        path.unlink()
    for folder in sorted({p.parent for p in stale}):
        if not any(folder.iterdir()):
            folder.rmdir()


def _labels_csv(specs: list[SampleSpec], num_classes: int) -> str:
    names = ntu.action_names(num_classes)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip", "label", "split"])
    for spec in specs:
        writer.writerow([spec.name, names[spec.action - 1], _split(spec, num_classes)])
    return buffer.getvalue()


def write_synthetic(
    settings: SynthSettings,
    fmt: FormatSettings,
    progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Write the synthetic data set in ``fmt``; ``progress(done, total)`` after each clip."""
    s = settings
    fmt.check()
    start = time.perf_counter()
    specs, out = plan_output(s)
    _clear(out, fmt.format, s.clean)
    layout = get_layout(fmt.layout)
    if fmt.format == "nwucla" and s.num_classes > len(nwucla.ACTIONS):
        raise SynthError(
            f"nwucla has {len(nwucla.ACTIONS)} actions; num_classes is {s.num_classes}"
        )

    def clips() -> Iterator[Clip]:
        for i, spec in enumerate(specs, 1):
            clip = synth_clip(spec, s, fmt, extra_people=fmt.format in _PASSERS_BY)
            if fmt.format == "nwucla":
                clip.name = _ucla_name(spec)
            yield clip
            if progress:
                progress(i, len(specs))

    if fmt.format == "openpose":
        openpose.write_clips(clips(), out, layout)
        written = [p for p in out.glob("*/*_keypoints.json")]
    elif fmt.format == "csv":
        csv_format.write_clips(clips(), out / "clips", layout)
        written = list((out / "clips").glob("*.csv"))
    elif fmt.format == "npz":
        frames = max(npz.DEFAULT_MAX_FRAMES, s.frames_max)
        npz.write_npz(clips(), out / "synth.npz", max_frames=frames, num_classes=s.num_classes)
        written = [out / "synth.npz"]
    elif fmt.format == "pyskl":
        parts = {f"xsub_{p}": [x.name for x in specs if _split(x, s.num_classes) == p]
                 for p in ntu.SPLITS}  # fmt: skip
        pyskl.write_pyskl(clips(), out / "synth.pkl", parts)
        written = [out / "synth.pkl"]
    else:
        written = _write_estimator_or_dataset(fmt.format, clips(), out, layout, s.num_classes)
    if fmt.format in _LABELLESS:
        atomic_write_text(out / LABELS_NAME, _labels_csv(specs, s.num_classes))
    bench = f"{_dataset(s.num_classes)}_xsub"  # the split the clips carry
    counts = {bench: split_counts(specs)[bench]}
    if fmt.format == "nwucla":
        val = sum(x.camera in nwucla.VAL_VIEWS for x in specs)
        counts = {"nwucla_xview": {"train": len(specs) - val, "val": val}}
    result = SynthResult(
        out_dir=out,
        files_written=len(written),
        bytes_written=sum(p.stat().st_size for p in written),
        seconds=time.perf_counter() - start,
        num_classes=s.num_classes,
        two_person_actions=list(two_person_actions(s.num_classes)),
        split_counts=counts,
    )
    names = ntu.action_names(s.num_classes)
    manifest = {
        "settings": {
            k: v for k, v in asdict(s).items() if k not in ("out_dir", "workers", "clean")
        },
        **asdict(fmt),
        "clips": len(specs),
        "files_written": result.files_written,
        "two_person_actions": result.two_person_actions,
        "classes": {a: names[a - 1] for a in range(1, s.num_classes + 1)},
        "split_counts": result.split_counts,
    }
    atomic_write_text(out / "synth.json", json.dumps(manifest, indent=1) + "\n")
    return result


def _write_estimator_or_dataset(
    fmt: str, clips: Iterator[Clip], out: Path, layout: Layout, num_classes: int
) -> list[Path]:
    """Write the clips in one of the formats added for estimators and data sets; the files."""
    if fmt == "mmpose":
        mmpose.write_clips(clips, out / "clips", layout)
        return list((out / "clips").glob("*.json"))
    if fmt == "alphapose":
        alphapose.write_clips(clips, out / "clips", layout, with_track_ids=True)
        return list((out / "clips").glob("*.json"))
    if fmt == "yolo":
        yolo.write_clips(clips, out / "labels", layout, IMAGE_SHAPE, save_conf=True)
        return list((out / "labels").glob("*.txt"))
    if fmt == "kinetics":
        names = dict(enumerate(ntu.action_names(num_classes)))
        kinetics.write_release(clips, out, layout, names)
        return [*out.glob("kinetics_*/*.json"), *out.glob("kinetics_*_label.json")]
    nwucla.write_clips(clips, out / nwucla.FOLDER, layout)
    return list((out / nwucla.FOLDER).glob("*.json"))
