"""Which samples synth writes: their NTU names, chosen so that every benchmark split is covered.

File names carry the setup, camera, subject, replication and action codes that NTU's benchmarks
split on (the split lists themselves live in `skelact.data.ntu`), so the plan decides which split
each sample lands in. It never uses a name from NTU's missing-skeleton lists, which preprocessing
would skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skelact.data import ntu
from skelact.errors import SkelactError


class SynthError(SkelactError, ValueError):
    """Settings or an output folder that synth cannot make a data set from (one line, named)."""


MAX_CLASSES = 120
MAX_SAMPLES_PER_CLASS = 1000
#: NTU 60 was recorded in setups 1-17 with subjects 1-40; NTU 120 added setups 18-32, P001-P106.
_NTU60_SETUPS = range(1, 18)
_NTU120_SETUPS = range(18, 33)
_NTU60_SUBJECTS = range(1, 41)
_NTU120_SUBJECTS = range(1, 107)

#: Benchmarks whose train/val coverage synth guarantees: (dataset, benchmark).
BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("ntu60", "xsub"),
    ("ntu60", "xview"),
    ("ntu120", "xsub"),
    ("ntu120", "xset"),
)


def two_person_actions(num_classes: int) -> tuple[int, ...]:
    """Action numbers (1-based) that synth renders as two-person interactions.

    With 60 or more classes these are NTU's own interaction classes (A050-A060, A106-A120); with
    fewer, the last ~20 % of the classes, so small data sets still contain interactions.
    """
    if num_classes >= 60:
        return tuple(a for a in range(1, num_classes + 1) if 50 <= a <= 60 or a >= 106)
    n = round(num_classes * 0.2)
    return tuple(range(num_classes - n + 1, num_classes + 1))


def _missing_names() -> frozenset[str]:
    """Both NTU missing-sample lists: preprocessing skips these names, so synth never uses them."""
    return ntu.missing_samples("ntu60") | ntu.missing_samples("ntu120")


@dataclass(frozen=True)
class SampleSpec:
    """One planned sample: its NTU codes and its index within its class."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int
    index: int

    @property
    def name(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )


def plan_samples(num_classes: int, samples_per_class: int, seed: int) -> list[SampleSpec]:
    """Choose the names of all samples.

    Three cyclic patterns with co-prime periods decide, per sample index k, the xsub side
    (train when k % 5 is even: 60 %), the camera (2, 1, 3: two thirds train for xview) and the
    setup parity (even = xset train).  Sample 0 is train and sample 1 val for every benchmark, so
    two samples per class already cover every split; the periods make all combinations occur.
    Subject, setup and replication within those constraints are drawn at random.
    """
    _check_counts(num_classes, samples_per_class)
    missing = _missing_names()
    specs: list[SampleSpec] = []
    for action in range(1, num_classes + 1):
        rng = np.random.default_rng([seed, action, 0x5EED])
        ntu60 = action <= 60
        subjects = _NTU60_SUBJECTS if ntu60 else _NTU120_SUBJECTS
        setups = _NTU60_SETUPS if ntu60 else _NTU120_SETUPS
        train_subjects = ntu.TRAIN_SUBJECTS_60 if ntu60 else ntu.TRAIN_SUBJECTS_120
        used: set[str] = set()
        for k in range(samples_per_class):
            xsub_train = k % 5 in (0, 2, 4)
            camera = (2, 1, 3)[k % 3]
            even = k % 2 == 0
            subj_pool = [p for p in subjects if (p in train_subjects) == xsub_train]
            setup_pool = [s for s in setups if (s % 2 == 0) == even]
            spec = None
            for _ in range(64):
                cand = SampleSpec(
                    setup=int(rng.choice(setup_pool)),
                    camera=camera,
                    subject=int(rng.choice(subj_pool)),
                    replication=int(rng.integers(1, 3)),
                    action=action,
                    index=k,
                )
                if cand.name not in used and cand.name not in missing:
                    spec = cand
                    break
            if spec is None:  # crowded cell: take the first free combination, deterministically
                spec = next(
                    (
                        c
                        for s in setup_pool
                        for p in subj_pool
                        for r in (1, 2)
                        if (c := SampleSpec(s, camera, p, r, action, k)).name not in used
                        and c.name not in missing
                    ),
                    None,
                )
            if spec is None:
                raise SynthError(
                    f"cannot find {samples_per_class} distinct valid names for action {action}"
                )
            used.add(spec.name)
            specs.append(spec)
    return specs


def _check_counts(num_classes: int, samples_per_class: int) -> None:
    if not 2 <= num_classes <= MAX_CLASSES:
        raise SynthError(f"num_classes must be between 2 and {MAX_CLASSES}, got {num_classes}")
    if not 2 <= samples_per_class <= MAX_SAMPLES_PER_CLASS:
        raise SynthError(
            "samples_per_class must be between 2 (one train and one val sample per split) and "
            f"{MAX_SAMPLES_PER_CLASS}, got {samples_per_class}"
        )


def split_counts(specs: Sequence[SampleSpec]) -> dict[str, dict[str, int]]:
    """Samples per benchmark part, e.g. {'ntu60_xsub': {'train': 180, 'val': 120}, ...}.

    Only samples that belong to the dataset count (NTU 60: actions 1-60 of setups 1-17).
    """
    out: dict[str, dict[str, int]] = {}
    for dataset, bench in BENCHMARKS:
        spec = ntu.dataset_spec(dataset)
        counts = {"train": 0, "val": 0}
        for s in specs:
            name = ntu.parse_sample_name(s.name)
            if spec.contains(name):
                counts[ntu.split_of(name, dataset, bench)] += 1
        out[f"{dataset}_{bench}"] = counts
    return out
