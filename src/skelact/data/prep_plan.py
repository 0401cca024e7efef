"""Preprocessing, step 1 of 3: the plan -- which file goes to which output, decided up front.

Everything that can be known without reading a sample is checked here, before any output folder
is touched: the options, the raw folder's listing, sample names, the missing-skeleton lists and
that every benchmark split gets at least one sample (an empty ``val.pkl`` trains fine and then
reports nonsense).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from skelact.data import ntu
from skelact.data.raw_folder import PreprocessError, RawListing, list_raw_dir

if TYPE_CHECKING:
    from skelact.data.preprocess import PreprocessSettings

#: mmaction: ``<bench>/{train,val}.pkl``; pyskl: ``<dataset>_3danno.pkl`` (pre-normalised, or
#: with ``raw`` the coordinates as read); npz: ``<bench>.npz`` (CTR-GCN / SGN layout).
FORMATS = ("mmaction", "pyskl", "npz")


class Task(NamedTuple):
    """One file to read; ``index`` is its place in the (name-sorted) output."""

    index: int
    path: str
    name: str
    label: int


@dataclass
class Plan:
    """The settings resolved against the raw folder."""

    dataset: str
    benchmarks: list[str]
    keys: list[str]  # output splits, e.g. ['xsub/train', 'xsub/val', ...]
    tasks: list[Task]
    outputs: list[list[str]]  # per task: the splits it belongs to
    listing: RawListing
    skipped_bad: list[dict[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # not in this dataset (setup/action)
    n_missing: int = 0  # on a missing-skeleton list


def resolve_benchmarks(dataset: str, benchmarks: Iterable[str] | None) -> list[str]:
    """Canonical, de-duplicated benchmark names (aliases such as ``xsetup`` accepted)."""
    spec = ntu.dataset_spec(dataset)
    if not benchmarks:
        return list(spec.benchmarks)
    out: list[str] = []
    for b in benchmarks:
        name = ntu.canonical_benchmark(dataset, b)
        if name not in out:
            out.append(name)
    return out


def make_plan(settings: PreprocessSettings) -> Plan:
    """Check the options and the raw folder; assign every sample to its outputs."""
    try:
        spec = ntu.dataset_spec(settings.dataset)
        benchmarks = resolve_benchmarks(settings.dataset, settings.benchmarks)
    except ValueError as exc:
        raise PreprocessError(str(exc)) from None
    if settings.format not in FORMATS:
        raise PreprocessError(f"unknown format {settings.format!r}; choose from {FORMATS}")
    if settings.raw and settings.format != "pyskl":
        raise PreprocessError("raw coordinates (--raw) are written only with --format pyskl")
    if settings.float16 and not (settings.raw and settings.format == "pyskl"):
        raise PreprocessError("--float16 is an option of --format pyskl --raw only")
    if settings.on_error not in ("fail", "skip"):
        raise PreprocessError(f"on_error must be 'fail' or 'skip', got {settings.on_error!r}")
    skip_bad = settings.on_error == "skip"
    raw_dir = Path(settings.raw_dir)
    listing = list_raw_dir(raw_dir, settings.recursive)
    if not listing.files and not listing.dangling:
        hint = (
            f"; {listing.in_subfolders} .skeleton files in subfolders: use --recursive"
            if listing.in_subfolders
            else "; is it the raw folder?"
        )
        raise PreprocessError(
            f"no .skeleton files in {raw_dir} ({listing.other} other entries){hint}"
        )
    missing = _missing(settings, spec.name)
    plan = Plan(spec.name, benchmarks, [f"{b}/{p}" for b in benchmarks for p in ntu.SPLITS],
                [], [], listing)  # fmt: skip
    for path in listing.dangling:
        message = f"{path}: dangling symbolic link (its target {_target(path)} does not exist)"
        if not skip_bad:
            raise PreprocessError(message)
        plan.skipped_bad.append({"file": path.name, "reason": message})
    for stem, path in listing.files:
        try:
            sample = ntu.parse_sample_name(stem)
        except ValueError as exc:
            if not skip_bad:
                raise PreprocessError(f"{path}: {exc}") from None
            plan.skipped_bad.append({"file": path.name, "reason": str(exc)})
            continue
        if stem in missing:
            plan.n_missing += 1
        elif not spec.contains(sample):
            plan.outside.append(stem)
        else:
            plan.tasks.append(Task(len(plan.tasks), str(path), stem, sample.label))
            plan.outputs.append([f"{b}/{ntu.split_of(sample, spec.name, b)}" for b in benchmarks])
    check_splits(plan, count_outputs(plan.keys, plan.outputs))
    return plan


def count_outputs(keys: list[str], outputs: Iterable[list[str]]) -> dict[str, int]:
    counts = dict.fromkeys(keys, 0)
    for task_keys in outputs:
        for key in task_keys:
            counts[key] += 1
    return counts


def check_splits(plan: Plan, counts: dict[str, int]) -> None:
    """An empty split is an error naming the benchmark and the split."""
    for key, n in counts.items():
        if n == 0:
            bench, part = key.split("/")
            others = ", ".join(f"{k}: {v}" for k, v in counts.items() if k != key)
            raise PreprocessError(
                f"benchmark {bench} of {plan.dataset}: the {part} split has no samples "
                f"({others}); add files of that split or choose other benchmarks"
            )


def _missing(settings: PreprocessSettings, dataset: str) -> set[str]:
    missing = set(ntu.missing_samples(dataset)) if settings.default_missing_list else set()
    if settings.missing_list is not None:
        try:
            missing |= ntu.read_sample_list(settings.missing_list)
        except ValueError as exc:
            raise PreprocessError(str(exc)) from None
    return missing


def _target(path: Path) -> str:
    try:
        return str(Path(path).readlink())
    except OSError:
        return "?"
