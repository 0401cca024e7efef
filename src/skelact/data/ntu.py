"""NTU RGB+D dataset facts: sample names, benchmark splits, missing samples, action names.

Kept apart from the parsing code so that the dataset, prediction and report stages can ask
"which split is this sample in?" or "what is action 42 called?" without importing the parser.
The split lists are the dataset authors' standard protocols (also used by the reference script).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Final, NamedTuple

#: Performers whose samples form the training part of the cross-subject benchmark (NTU 60).
TRAIN_SUBJECTS_60: Final[frozenset[int]] = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
)
#: NTU 120 extends the NTU 60 training subjects with these.
TRAIN_SUBJECTS_120: Final[frozenset[int]] = TRAIN_SUBJECTS_60 | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86)
    + (89, 91, 92, 93, 94, 95, 97, 98, 100, 103)
)
#: Cameras 2 and 3 train, camera 1 validates (cross-view, NTU 60 only).
TRAIN_CAMERAS_60: Final[frozenset[int]] = frozenset((2, 3))
#: Even setups train, odd setups validate (cross-setup, NTU 120 only).
TRAIN_SETUPS_120: Final[frozenset[int]] = frozenset(range(2, 33, 2))

SPLITS: Final[tuple[str, str]] = ("train", "val")

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class SampleName(NamedTuple):
    """The five numbers encoded in an NTU sample name such as ``S001C002P003R002A013``."""

    setup: int
    camera: int
    performer: int
    replication: int
    action: int

    @property
    def name(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.performer:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )

    @property
    def label(self) -> int:
        """0-based class index, as the reference stores it (action number - 1)."""
        return self.action - 1


def parse_sample_name(name: str) -> SampleName:
    """Parse ``SsssCcccPpppRrrrAaaa`` (an optional directory and ``.skeleton`` suffix are dropped).

    Strict on purpose: the reference finds the letters with ``str.find``, which silently reads
    garbage from a stray file name; here a bad name is an error that names it.
    """
    stem = Path(str(name)).name
    if stem.endswith(".skeleton"):
        stem = stem[: -len(".skeleton")]
    match = _NAME_RE.fullmatch(stem)
    if match is None:
        raise ValueError(
            f"{name!r} is not an NTU RGB+D sample name (expected SsssCcccPpppRrrrAaaa, "
            "e.g. S001C002P003R002A013)"
        )
    parsed = SampleName(*(int(g) for g in match.groups()))
    if min(parsed) < 1:
        raise ValueError(f"{name!r} is not an NTU RGB+D sample name (numbers start at 001)")
    return parsed


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between NTU 60 and NTU 120."""

    name: str
    num_classes: int
    num_setups: int
    benchmarks: tuple[str, ...]
    missing_list: str  # packaged resource file name

    def contains(self, sample: SampleName) -> bool:
        """Whether the sample belongs to this dataset (NTU 60 is the S001-S017, A001-A060 part)."""
        return sample.action <= self.num_classes and sample.setup <= self.num_setups


DATASETS: Final[dict[str, DatasetSpec]] = {
    "ntu60": DatasetSpec(
        "ntu60", 60, 17, ("xsub", "xview"), "NTU_RGBD_samples_with_missing_skeletons.txt"
    ),
    "ntu120": DatasetSpec(
        "ntu120", 120, 32, ("xsub", "xset"), "NTU_RGBD120_samples_with_missing_skeletons.txt"
    ),
}

#: Other spellings of benchmark names: the reference script says ``xsetup``, PYSKL says ``xset``.
BENCHMARK_ALIASES: Final[dict[str, str]] = {"xsetup": "xset", "cs": "xsub", "cv": "xview"}


def dataset_spec(dataset: str) -> DatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(
            f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}"
        ) from None


def canonical_benchmark(dataset: str, benchmark: str) -> str:
    """The benchmark's canonical name for this dataset, or a ValueError listing the valid ones."""
    spec = dataset_spec(dataset)
    name = BENCHMARK_ALIASES.get(benchmark.lower(), benchmark.lower())
    if name not in spec.benchmarks:
        raise ValueError(
            f"benchmark {benchmark!r} does not exist for {dataset}; "
            f"choose from {', '.join(spec.benchmarks)}"
        )
    return name


def is_training(sample: SampleName, dataset: str, benchmark: str) -> bool:
    """The standard protocol: is this sample in the training part of the benchmark?"""
    bench = canonical_benchmark(dataset, benchmark)
    if bench == "xsub":
        subjects = TRAIN_SUBJECTS_60 if dataset == "ntu60" else TRAIN_SUBJECTS_120
        return sample.performer in subjects
    if bench == "xview":
        return sample.camera in TRAIN_CAMERAS_60
    return sample.setup in TRAIN_SETUPS_120  # xset


def split_of(sample: SampleName, dataset: str, benchmark: str) -> str:
    """``'train'`` or ``'val'``."""
    return "train" if is_training(sample, dataset, benchmark) else "val"


def read_sample_list(path: str | Path) -> frozenset[str]:
    """Sample names from a text file, one per line (blank lines and ``#`` comments ignored).

    Every entry must be a valid sample name, so a wrong file (or a typo) is reported rather than
    quietly skipping nothing.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read sample list {path}: {exc}") from exc
    names = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            names.add(parse_sample_name(entry).name)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
    return frozenset(names)


def _resource_text(name: str) -> str:
    return resources.files("skelact.data").joinpath("resources", name).read_text(encoding="utf-8")


@cache
def missing_samples(dataset: str) -> frozenset[str]:
    """The dataset authors' list of samples whose skeletons are missing (packaged with skelact)."""
    spec = dataset_spec(dataset)
    return frozenset(
        line.strip() for line in _resource_text(spec.missing_list).splitlines() if line.strip()
    )


@cache
def _all_action_names() -> tuple[str, ...]:
    return tuple(
        line.strip() for line in _resource_text("action_names.txt").splitlines() if line.strip()
    )


def action_names(num_classes: int = 120) -> list[str]:
    """Names of actions A001..A<num_classes>; index = label. NTU 60 uses the first 60."""
    names = _all_action_names()
    if not 1 <= num_classes <= len(names):
        raise ValueError(f"num_classes must be in 1..{len(names)}, got {num_classes}")
    return list(names[:num_classes])
