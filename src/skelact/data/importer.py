"""The ``import`` stage: your own skeletons (any format, any layout) -> the project's pickles.

One pass over the source's clips: each is checked (joint count for the layout, dimensions and
scores consistent with the first clip, finite values, scores in [0, 1], a label, a known class),
given the project's person count (the most active first, padded with absent persons) and
normalised (:mod:`skelact.data.normalise`). A problem names the clip; ``on_error='fail'`` stops
at the first, ``'skip'`` leaves the clip out and lists it in the report. Then the splits are
drawn and everything is written into ``out_dir``, as ``skelact preprocess`` lays it out for the
benchmark ``custom``:

* ``custom/train.pkl``, ``custom/val.pkl``: MMAction2 0.x lists of annotation dicts;
* ``custom_<C>danno.pkl`` (``C`` = 2 or 3): the PYSKL file, splits ``custom_train``/``custom_val``;
* ``classes.txt`` (also in ``custom/``): the class names in index order;
* ``import_report.json``: counts per class and split, every dropped clip with its reason.

All or nothing: the outputs are written as temporaries and renamed into place only when every
check passed, so a failed import leaves no output (and the previous one, if any, untouched).
Samples are spooled to a temporary file while the clips are read, so memory stays flat however
large the source is.

Readers are found by name: format ``X`` is ``skelact.data.formats.X.read_clips``. Formats that
carry no labels (``openpose``, ``csv``, ``mmpose``, ``yolo``, ``alphapose``) need a labels file;
``npz``, ``pyskl`` and the data sets ``kinetics`` and ``nwucla`` carry their own integer labels and
train/val splits (the data sets also their class names). A data set's import writes its
benchmark's folder (``ImportSettings.name``, e.g. ``kinetics/``) instead of ``custom/``.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from skelact.atomic import StagedText, remove_stale_temps, signals_held, staged_temp
from skelact.data import prenorm
from skelact.data.classes import CLASSES_FILE, read_classes
from skelact.data.formats import (
    FORMATS,
    Clip,
    Dropped,
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
from skelact.data.formats.tracks import order_by_energy, present_joints
from skelact.data.normalise import NormaliseError, normalise
from skelact.data.pickle_stream import PickleListWriter
from skelact.data.prep_parse import pickle_body
from skelact.data.safe_pickle import DatasetError
from skelact.errors import SkelactError
from skelact.layouts import Layout, get_layout
from skelact.locking import output_lock

__all__ = [
    "BENCHMARK",
    "LABELLED_FORMATS",
    "ImportDataError",
    "ImportResult",
    "ImportSettings",
    "import_data",
    "import_summary",
    "parse_img_shape",
]

BENCHMARK = "custom"
REPORT_NAME = "import_report.json"
#: The labels file's split column when ``split_by`` names none (``clip,label,split``).
DEFAULT_SPLIT_COLUMN = "split"
SPLITS = ("train", "val")
#: Formats whose clips carry their own labels and splits (no labels file).
LABELLED_FORMATS = ("npz", "pyskl", "kinetics", "nwucla")
_READERS = {"openpose": openpose.read_clips, "csv": csv_format.read_clips, "npz": npz.read_clips,
            "pyskl": pyskl.read_clips, "mmpose": mmpose.read_clips, "yolo": yolo.read_clips,
            "alphapose": alphapose.read_clips, "kinetics": kinetics.read_clips,
            "nwucla": nwucla.read_clips}  # fmt: skip
#: Formats whose source names its classes (used unless --classes is given).
_CLASS_NAMES = {"kinetics": kinetics.class_names, "nwucla": nwucla.class_names}
DEFAULT_VAL_FRACTION = 0.2


class ImportDataError(SkelactError, ValueError):
    """Bad import input or settings; the message names the file, the clip and the problem."""


@dataclass
class ImportSettings:
    """Everything the stage needs; the CLI and the tests build the same object.

    The split: ``split_by`` names a column of the labels file whose values are ``train`` /
    ``val``; without it, sources that carry their own split (npz, a PYSKL dict) keep it, and
    anything else is split per class, ``val_fraction`` of each class to val, drawn with ``seed``
    (the same fields as ``params.yaml``'s ``import`` section).
    """

    fmt: str
    src: Path
    layout: str
    out_dir: Path
    labels: Path | None = None
    classes: Path | None = None
    split_by: str | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    seed: int = 0
    on_error: Literal["fail", "skip"] = "fail"
    normalise: Literal["body", "image"] = "body"
    img_shape: tuple[int, int] | None = None  # frame size for --normalise image, if not in the data
    num_persons: int = 2
    benchmark: str | None = None  # pyskl: which <benchmark>_train/_val pair of the file
    name: str = BENCHMARK  # the benchmark written: <out_dir>/<name>/, <name>_<C>danno.pkl


@dataclass
class ImportResult:
    """What was written and left out; saved as ``import_report.json``."""

    format: str
    src: str
    layout: str
    dims: int
    scores: bool
    num_persons: int
    normalise: str
    rules: dict[str, int]  # samples per normalisation rule applied (ntu, body, image, ...)
    split_method: str  # column | source | fraction
    val_fraction: float | None
    seed: int | None
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class name -> samples
    totals: dict[str, int]  # split -> samples
    dropped: list[dict[str, str]] = field(default_factory=list)  # {'clip', 'reason'}
    outputs: dict[str, str] = field(default_factory=dict)
    report_path: str = ""


def import_data(settings: ImportSettings) -> ImportResult:
    """Run the stage; raises :class:`ImportDataError` on bad input (or only on fatal problems
    with ``on_error='skip'``: no clips left, an empty split, unreadable labels or classes)."""
    _check_settings(settings)
    layout = get_layout(settings.layout)
    read_clips = _reader(settings.fmt)
    labels = _read_labels(settings) if settings.labels is not None else None
    classes = _read_classes(settings.classes) if settings.classes is not None else None
    if classes is None and settings.fmt in _CLASS_NAMES:
        classes = _CLASS_NAMES[settings.fmt](Path(settings.src))
    out_dir = Path(settings.out_dir)
    bench_dir = out_dir / settings.name
    new_dirs = [d for d in (out_dir, bench_dir) if not d.exists()]
    try:
        with output_lock(out_dir, "import"):
            for folder in (out_dir, bench_dir):
                remove_stale_temps(folder)
            return _run(settings, layout, read_clips, labels, classes, out_dir)
    except BaseException:
        for folder in reversed(new_dirs):
            with contextlib.suppress(OSError):  # not empty (or already gone): leave it
                folder.rmdir()
        raise


# ---- settings, labels and classes ------------------------------------------------------------


def _check_settings(settings: ImportSettings) -> None:
    if settings.fmt not in FORMATS:
        raise ImportDataError(f"--from {settings.fmt!r}: not one of {', '.join(FORMATS)}")
    if settings.fmt in LABELLED_FORMATS and settings.labels is not None:
        raise ImportDataError(
            f"--labels: {settings.fmt} files carry their own labels; a labels file is for "
            "openpose and csv (give class names with --classes)"
        )
    if settings.fmt not in LABELLED_FORMATS and settings.labels is None:
        raise ImportDataError(
            f"--labels is required for {settings.fmt}: a CSV 'clip,label[,split]' naming each "
            "clip's class"
        )
    if settings.split_by is not None and settings.labels is None:
        raise ImportDataError(
            f"--split-by {settings.split_by!r} names a column of the labels file; {settings.fmt} "
            "sources keep their own split"
        )
    fraction = settings.val_fraction
    if not 0 < fraction < 1:
        raise ImportDataError(f"--val-fraction {fraction}: must lie strictly between 0 and 1")
    if settings.on_error not in ("fail", "skip"):
        raise ImportDataError(f"--on-error {settings.on_error!r}: fail or skip")
    if settings.normalise not in ("body", "image"):
        raise ImportDataError(f"--normalise {settings.normalise!r}: body or image")
    if settings.benchmark is not None and settings.fmt != "pyskl":
        raise ImportDataError(
            f"--benchmark picks a split pair of a pyskl file, not of {settings.fmt}"
        )
    if settings.fmt == "yolo" and settings.img_shape is None:
        raise ImportDataError(
            "--img-shape HEIGHTxWIDTH is required for yolo (import.img_shape): its .txt "
            "coordinates are fractions of the frame, which the files do not size"
        )
    if not settings.name or not settings.name.replace("_", "").isalnum():
        raise ImportDataError(f"benchmark name {settings.name!r}: letters, digits and _ only")
    if settings.num_persons < 1:
        raise ImportDataError(f"num_persons {settings.num_persons}: must be at least 1")


def _reader(fmt: str) -> Callable[..., Iterator[Clip | Dropped]]:
    """``skelact.data.formats.<fmt>.read_clips``. Every reader is imported with this module (they
    are small), so the import stage runs the same code whatever the format: its DVC deps list
    exactly that code, and a change to any reader reruns it."""
    return _READERS[fmt]


@dataclass(frozen=True)
class _LabelRow:
    label: str
    split: str | None
    line: int


def _read_labels(settings: ImportSettings) -> dict[str, _LabelRow]:
    """``clip,label[,...]`` rows by clip name; a malformed file fails whatever ``on_error``.

    Columns other than ``clip`` and ``label`` are allowed (a subject, a note, several candidate
    splits); only the split column is read (``split_by``, by default ``split`` when the file has
    one), and its values must be train or val.
    """
    path = Path(settings.labels)  # type: ignore[arg-type]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportDataError(f"{path}: cannot read the labels file ({exc})") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise ImportDataError(f"{path}: empty labels file; expected a header 'clip,label[,split]'")
    header = [h.strip() for h in rows[0]]
    missing = [k for k in ("clip", "label") if k not in header]
    if missing or len(set(header)) != len(header):
        raise ImportDataError(
            f"{path}: header {','.join(header)!r}; expected the columns clip and label (once "
            "each), e.g. 'clip,label,split'"
        )
    clip_col, label_col = header.index("clip"), header.index("label")
    split_col = None
    if settings.split_by is not None:
        if settings.split_by not in header:
            raise ImportDataError(
                f"{path}: --split-by {settings.split_by!r}, but the labels file has no such column "
                f"(columns: {', '.join(header)})"
            )
        split_col = header.index(settings.split_by)
    elif DEFAULT_SPLIT_COLUMN in header:
        split_col = header.index(DEFAULT_SPLIT_COLUMN)
    split_name = settings.split_by or DEFAULT_SPLIT_COLUMN
    out: dict[str, _LabelRow] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ImportDataError(
                f"{path}: line {line} has {len(row)} cells, expected {len(header)}"
            )
        clip, label = row[clip_col].strip(), row[label_col].strip()
        split = row[split_col].strip() if split_col is not None else None
        if not clip or not label:
            raise ImportDataError(f"{path}: line {line}: empty clip or label")
        if clip in out:
            raise ImportDataError(
                f"{path}: line {line}: clip {clip!r} again (first on line {out[clip].line})"
            )
        if split is not None and split not in SPLITS:
            raise ImportDataError(
                f"{path}: line {line}: clip {clip!r} has {split_name} {split!r}; expected "
                "train or val"
            )
        out[clip] = _LabelRow(label, split, line)
    if not out:
        raise ImportDataError(f"{path}: no label rows after the header")
    return out


def _read_classes(path: Path) -> list[str]:
    """The ``--classes`` list, by the rules of every ``classes.txt`` (file and line in errors)."""
    try:
        return read_classes(path)
    except DatasetError as exc:
        raise ImportDataError(str(exc)) from None


def parse_img_shape(text: str) -> tuple[int, int]:
    """``'1080x1920'`` (height x width, pixels) -> ``(1080, 1920)``."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ImportDataError(
            f"--img-shape {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 1080x1920"
        )
    return int(parts[0]), int(parts[1])


# ---- the run ---------------------------------------------------------------------------------


class _ClipProblem(Exception):
    """One clip is bad; fails the import or is reported, per ``on_error``."""


@dataclass
class _Kept:
    """A checked sample: where its pickled annotation lies in the spool, and its label/split."""

    name: str
    label: int
    split: str | None
    offset: int
    size: int


@dataclass
class _State:
    """What the first accepted clip fixed (dims, scores) and what has been seen so far."""

    dims: int | None = None
    scores: bool | None = None
    names: set[str] = field(default_factory=set)
    rules: Counter[str] = field(default_factory=Counter)
    dropped: list[dict[str, str]] = field(default_factory=list)


def _run(
    settings: ImportSettings,
    layout: Layout,
    read_clips: Callable[..., Iterator[Clip | Dropped]],
    labels: dict[str, _LabelRow] | None,
    classes: list[str] | None,
    out_dir: Path,
) -> ImportResult:
    if labels is not None and classes is None:
        classes = sorted({row.label for row in labels.values()})
    class_index = {name: i for i, name in enumerate(classes)} if classes is not None else None
    state = _State()
    kept: list[_Kept] = []
    spool_path = staged_temp(out_dir / "import_spool")
    writers: list[PickleListWriter | StagedText] = []
    try:
        with open(spool_path, "w+b") as spool:
            options: dict[str, Any] = {}
            if settings.benchmark is not None:
                options["split"] = settings.benchmark
            if settings.fmt == "yolo":
                options["img_shape"] = settings.img_shape
            for item in read_clips(Path(settings.src), layout, **options):
                name = item.name
                try:
                    if isinstance(item, Dropped):
                        raise _ClipProblem(item.reason)
                    sample = _accept(item, settings, layout, labels, class_index, state)
                except _ClipProblem as problem:
                    _problem(settings, state, name, str(problem))
                    continue
                offset = spool.tell()
                body = pickle_body(sample[0])
                spool.write(body)
                kept.append(_Kept(name, sample[1], sample[2], offset, len(body)))
            if labels is not None:
                for clip in sorted(set(labels) - state.names - {d["clip"] for d in state.dropped}):
                    _problem(settings, state, clip, f"label row (line {labels[clip].line}) "
                             "but no such clip in the source")  # fmt: skip
            if not kept:
                raise ImportDataError(_nothing_imported(settings, state))
            if classes is None:
                top = max(k.label for k in kept)
                classes = [str(i) for i in range(top + 1)]
            method, split_of = _splits(settings, kept, labels, len(classes))
            result = _result(settings, layout, state, classes, kept, split_of, method)
            writers = _write(out_dir, spool, kept, split_of, result, settings.name)
            with signals_held():
                for writer in writers:
                    writer.commit()
                writers = []  # all in place: nothing to abort
                other = 5 - result.dims  # a previous import of the other dimension: stale now
                (out_dir / f"{settings.name}_{other}danno.pkl").unlink(missing_ok=True)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    finally:
        spool_path.unlink(missing_ok=True)
    return result


def _nothing_imported(settings: ImportSettings, state: _State) -> str:
    if not state.dropped:
        return f"{settings.src}: no clips found"
    first = state.dropped[0]
    return (
        f"{settings.src}: no clips imported: all {len(state.dropped)} were dropped, the first "
        f"({first['clip']!r}) because: {first['reason']}"
    )


def _problem(settings: ImportSettings, state: _State, clip: str, reason: str) -> None:
    if settings.on_error == "fail":
        raise ImportDataError(f"{settings.src}: clip {clip!r}: {reason}")
    state.dropped.append({"clip": clip, "reason": reason})


def _accept(
    clip: Clip,
    settings: ImportSettings,
    layout: Layout,
    labels: dict[str, _LabelRow] | None,
    class_index: dict[str, int] | None,
    state: _State,
) -> tuple[dict[str, Any], int, str | None]:
    """Check, select persons and normalise one clip -> (annotation, label index, split)."""
    if clip.name in state.names:
        raise _ClipProblem("a second clip with this name")
    state.names.add(clip.name)
    label, split = _label_of(clip, labels, class_index)
    keypoint, score = _checked_arrays(clip, layout, state)
    keypoint, score = _persons(keypoint, score, layout, settings.num_persons)
    img_shape = clip.img_shape if clip.img_shape is not None else settings.img_shape
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            normalised, rule = normalise(
                keypoint, layout, score=score, mode=settings.normalise, img_shape=img_shape
            )
    except NormaliseError as exc:
        raise _ClipProblem(str(exc)) from None
    if not np.isfinite(normalised).all():
        raise _ClipProblem("coordinates too large: normalisation overflows float32")
    state.rules[rule] += 1
    ann: dict[str, Any] = {"total_frames": int(normalised.shape[1]), "keypoint": normalised}
    if score is not None:
        ann["keypoint_score"] = score
    ann["frame_dir"] = clip.name
    if img_shape is not None:
        ann["img_shape"] = (int(img_shape[0]), int(img_shape[1]))
    ann["label"] = label
    ann["layout"] = layout.name
    return ann, label, split


def _label_of(
    clip: Clip, labels: dict[str, _LabelRow] | None, class_index: dict[str, int] | None
) -> tuple[int, str | None]:
    if labels is not None:
        row = labels.get(clip.name)
        if row is None:
            raise _ClipProblem("no label: the clip is not in the labels file")
        assert class_index is not None
        if row.label not in class_index:
            raise _ClipProblem(f"class {row.label!r} (labels line {row.line}) is not in --classes")
        return class_index[row.label], row.split
    label = clip.label
    if isinstance(label, str) and class_index is not None:
        if label not in class_index:
            raise _ClipProblem(f"class {label!r} is not in --classes")
        return class_index[label], clip.split
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise _ClipProblem(f"label {label!r} is not a class index")
    if label < 0:
        raise _ClipProblem(f"label {int(label)} is negative")
    if class_index is not None and label >= len(class_index):
        raise _ClipProblem(f"label {int(label)} is outside the {len(class_index)} classes given")
    return int(label), clip.split


def _checked_arrays(
    clip: Clip, layout: Layout, state: _State
) -> tuple[np.ndarray, np.ndarray | None]:
    kp = np.asarray(clip.keypoint)
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3):
        raise _ClipProblem(f"keypoint shape {kp.shape}; expected M x T x V x C with C = 2 or 3")
    if kp.shape[2] != layout.num_joints:
        raise _ClipProblem(
            f"{kp.shape[2]} joints per person; layout {layout.name} has {layout.num_joints}"
        )
    if kp.shape[0] < 1 or kp.shape[1] < 1:
        raise _ClipProblem(f"keypoint shape {kp.shape}: no persons or no frames")
    dims, has_score = int(kp.shape[-1]), clip.score is not None
    if state.dims is not None and dims != state.dims:
        raise _ClipProblem(f"{dims}-D keypoints, but the clips before are {state.dims}-D")
    if state.scores is not None and has_score != state.scores:
        which = "has scores" if has_score else "has no scores"
        raise _ClipProblem(f"{which}, unlike the clips before it")
    with np.errstate(over="ignore", invalid="ignore"):
        kp = kp.astype(np.float32)
    bad = int(np.count_nonzero(~np.isfinite(kp)))
    if bad:
        raise _ClipProblem(f"{bad} non-finite coordinate(s) (NaN, inf or beyond float32)")
    score = None
    if clip.score is not None:
        score = np.asarray(clip.score).astype(np.float32)
        if score.shape != kp.shape[:3]:
            raise _ClipProblem(f"score shape {score.shape} does not match keypoint {kp.shape}")
        outside = ~((score >= 0) & (score <= 1))  # NaN counts as outside
        if outside.any():
            first = float(score[outside].flat[0])
            raise _ClipProblem(
                f"{int(outside.sum())} score(s) outside [0, 1] (e.g. {first:g}); scores are "
                "confidences in [0, 1]"
            )
    if not present_joints(kp, score).any():
        raise _ClipProblem("no joint of any person is present in any frame")
    state.dims, state.scores = dims, has_score
    return kp, score


def _persons(
    keypoint: np.ndarray, score: np.ndarray | None, layout: Layout, num_persons: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``num_persons`` most active persons (zero-padded); a source with few keeps its order.

    A raw 3-D ntu25 clip is ranked by the reference's rule (NTU's body selection), any other by
    :func:`~skelact.data.formats.tracks.order_by_energy`.
    """
    m = keypoint.shape[0]
    if m > num_persons:
        if keypoint.shape[-1] == 3 and layout.name == "ntu25":
            order = np.argsort(prenorm.motion_energy(keypoint))[::-1][:num_persons]
        else:
            order = order_by_energy(keypoint, score)[:num_persons]
        keypoint = keypoint[order]
        score = None if score is None else score[order]
    elif m < num_persons:
        pad = ((0, num_persons - m), (0, 0), (0, 0))
        keypoint = np.pad(keypoint, (*pad, (0, 0)))
        score = None if score is None else np.pad(score, pad)
    return np.ascontiguousarray(keypoint), None if score is None else np.ascontiguousarray(score)


# ---- splits ----------------------------------------------------------------------------------


def _splits(
    settings: ImportSettings,
    kept: list[_Kept],
    labels: dict[str, _LabelRow] | None,
    num_classes: int,
) -> tuple[str, dict[str, str]]:
    """``(method, split per clip name)``; an empty split is an error whatever ``on_error``."""
    own = [k.split is not None for k in kept]
    if labels is not None and any(row.split is not None for row in labels.values()):
        method = "column"
    elif labels is None and all(own):
        method = "source"
    elif labels is None and any(own):
        lacking = next(k.name for k in kept if k.split is None)
        raise ImportDataError(
            f"{settings.src}: clip {lacking!r} has no split but {sum(own)} others have one: "
            "give every clip a split, or none (then --val-fraction splits them)"
        )
    else:
        method = "fraction"
    if method == "fraction":
        split_of = _stratified(kept, settings.val_fraction, settings.seed, num_classes)
    else:
        split_of = {k.name: str(k.split) for k in kept}
    counts = Counter(split_of.values())
    for split in SPLITS:
        if not counts[split]:
            raise ImportDataError(
                f"{settings.src}: the {split} split is empty ({len(kept)} clips imported, split "
                f"by {method}); both train and val need clips"
            )
    return method, split_of


def _stratified(kept: list[_Kept], fraction: float, seed: int, num_classes: int) -> dict[str, str]:
    """Per class: ``round(n * fraction)`` clips (at least 1, at most n - 1) go to val.

    Each class draws from its own generator seeded with ``(seed, class)``, over its clip names
    sorted, so the split depends on nothing but the names, labels, fraction and seed (not on the
    reading order, nor on the other classes). A class with one clip trains.
    """
    by_class: dict[int, list[str]] = {}
    for k in kept:
        by_class.setdefault(k.label, []).append(k.name)
    split_of = {}
    for label in range(num_classes):
        names = sorted(by_class.get(label, []))
        n = len(names)
        n_val = min(n - 1, max(1, round(n * fraction))) if n >= 2 else 0
        order = np.random.default_rng([seed, label]).permutation(n)
        val = {names[i] for i in order[:n_val]}
        split_of.update({name: "val" if name in val else "train" for name in names})
    return split_of


# ---- outputs ---------------------------------------------------------------------------------


def _result(
    settings: ImportSettings,
    layout: Layout,
    state: _State,
    classes: list[str],
    kept: list[_Kept],
    split_of: dict[str, str],
    method: str,
) -> ImportResult:
    counts = {s: dict.fromkeys(classes, 0) for s in SPLITS}
    for k in kept:
        counts[split_of[k.name]][classes[k.label]] += 1
    fraction = settings.val_fraction if method == "fraction" else None
    return ImportResult(
        format=settings.fmt, src=str(settings.src), layout=layout.name, dims=int(state.dims or 0),
        scores=bool(state.scores), num_persons=settings.num_persons, normalise=settings.normalise,
        rules=dict(sorted(state.rules.items())), split_method=method, val_fraction=fraction,
        seed=settings.seed if method == "fraction" else None, classes=classes, counts=counts,
        totals={s: sum(counts[s].values()) for s in SPLITS}, dropped=state.dropped,
    )  # fmt: skip


def _write(
    out_dir: Path,
    spool: BinaryIO,
    kept: list[_Kept],
    split_of: dict[str, str],
    result: ImportResult,
    name: str = BENCHMARK,
) -> list[PickleListWriter | StagedText]:
    """Every output as a temporary (the caller commits them all or aborts them all)."""
    bench = out_dir / name
    pyskl_path = out_dir / f"{name}_{result.dims}danno.pkl"
    lists = {s: PickleListWriter(bench / f"{s}.pkl") for s in SPLITS}
    writers: list[PickleListWriter | StagedText] = [*lists.values()]
    try:
        both = PickleListWriter(pyskl_path, wrap_dict_key="annotations")
        writers.append(both)
        for k in kept:
            spool.seek(k.offset)
            body = spool.read(k.size)
            lists[split_of[k.name]].append(body)
            both.append(body)
        for writer in lists.values():
            writer.finish()
        splits = {f"{name}_{s}": [k.name for k in kept if split_of[k.name] == s]
                  for s in SPLITS}  # fmt: skip
        both.finish({"split": splits})
        result.outputs = {
            **{f"{name}/{s}": str(w.final) for s, w in lists.items()},
            "pyskl": str(pyskl_path),
            "classes": str(out_dir / CLASSES_FILE),
        }
        result.report_path = str(out_dir / REPORT_NAME)
        names = "".join(f"{name}\n" for name in result.classes)
        writers.append(StagedText(out_dir / CLASSES_FILE, names))
        writers.append(StagedText(bench / CLASSES_FILE, names))
        report = json.dumps(asdict(result), indent=2) + "\n"
        writers.append(StagedText(out_dir / REPORT_NAME, report))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    return writers


def import_summary(result: ImportResult) -> str:
    """A few human-readable lines for the CLI."""
    dims = f"{result.dims}-D" + (" + scores" if result.scores else "")
    lines = [
        f"{result.format} -> {result.layout} ({dims}): "
        + ", ".join(f"{s} {n}" for s, n in result.totals.items())
        + f" clips, {len(result.classes)} classes (split by {result.split_method})",
    ]
    if result.dropped:
        lines.append(f"  {len(result.dropped)} clips DROPPED (reasons in {result.report_path})")
        lines += [f"    {d['clip']}: {d['reason']}" for d in result.dropped[:5]]
        if len(result.dropped) > 5:
            lines.append(f"    ... and {len(result.dropped) - 5} more")
    lines.append("  outputs: " + ", ".join(result.outputs.values()))
    return "\n".join(lines)
