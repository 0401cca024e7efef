"""The `skelact synth` stage: plan the samples, write their files in parallel, and a manifest."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skelact.atomic import atomic_write_bytes
from skelact.data.synth.bodies import generate_sample
from skelact.data.synth.motions import class_program
from skelact.data.synth.plan import (
    SampleSpec,
    SynthError,
    plan_samples,
    split_counts,
    two_person_actions,
)
from skelact.data.synth.writer import format_skeleton


@dataclass(frozen=True)
class SynthSettings:
    """What `skelact synth` generates."""

    out_dir: Path
    num_classes: int = 10
    samples_per_class: int = 30
    seed: int = 0
    frames_min: int = 40
    frames_max: int = 100
    noise: float = 0.004  # std of the Gaussian joint noise, metres
    workers: int = 1  # processes; 0 = all cores
    clean: bool = False  # delete other *.skeleton files already in out_dir


@dataclass
class SynthResult:
    """What was written, and how the samples fall into the benchmark splits."""

    out_dir: Path
    files_written: int
    bytes_written: int
    seconds: float
    num_classes: int
    two_person_actions: list[int]
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        return self.files_written / self.seconds if self.seconds > 0 else float("inf")


def _make_file(args: tuple[SampleSpec, SynthSettings]) -> int:
    spec, s = args
    bodies = generate_sample(spec, s.num_classes, s.seed, (s.frames_min, s.frames_max), s.noise)
    data = format_skeleton(bodies).encode("ascii")
    atomic_write_bytes(Path(s.out_dir) / f"{spec.name}.skeleton", data)
    return len(data)


def check_settings(s: SynthSettings) -> None:
    """The checks every synth output needs before anything is planned or written."""
    if not 2 <= s.frames_min <= s.frames_max:
        raise SynthError(f"need 2 <= frames_min <= frames_max, got {s.frames_min}, {s.frames_max}")
    if s.noise < 0:
        raise SynthError(f"noise must be >= 0, got {s.noise}")


def plan_output(settings: SynthSettings) -> tuple[list[SampleSpec], Path]:
    """Checked settings -> (the planned samples, the output folder, created if missing); the
    first step of every synthetic writer (.skeleton files here, other formats in formats.py)."""
    check_settings(settings)
    specs = plan_samples(settings.num_classes, settings.samples_per_class, settings.seed)
    out = Path(settings.out_dir)
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    return specs, out


def synthesize(
    settings: SynthSettings, progress: Callable[[int, int], None] | None = None
) -> SynthResult:
    """Write the synthetic data set; ``progress(done, total)`` is called after each file."""
    s = settings
    start = time.perf_counter()
    specs, out = plan_output(s)
    planned = {f"{p.name}.skeleton" for p in specs}
    stale = sorted(p for p in out.glob("*.skeleton") if p.name not in planned)
    if stale and not s.clean:
        raise SynthError(
            f"{out} already holds {len(stale)} other .skeleton files (e.g. {stale[0].name}) that "
            "would mix with the new data set; use another directory or clean=True (--clean)"
        )
    for p in stale:
        p.unlink()
    workers = s.workers or os.cpu_count() or 1
    jobs = [(p, s) for p in specs]
    total = 0
    if workers == 1:
        results = map(_make_file, jobs)
        for i, n in enumerate(results, 1):
            total += n
            if progress:
                progress(i, len(jobs))
    else:
        with ProcessPoolExecutor(workers) as pool:
            for i, n in enumerate(pool.map(_make_file, jobs, chunksize=16), 1):
                total += n
                if progress:
                    progress(i, len(jobs))
    result = SynthResult(
        out_dir=out,
        files_written=len(specs),
        bytes_written=total,
        seconds=time.perf_counter() - start,
        num_classes=s.num_classes,
        two_person_actions=list(two_person_actions(s.num_classes)),
        split_counts=split_counts(specs),
    )
    manifest = {
        "settings": {
            k: v for k, v in asdict(s).items() if k not in ("out_dir", "workers", "clean")
        },
        "files_written": result.files_written,
        "two_person_actions": result.two_person_actions,
        "classes": {p: class_program(p, s.num_classes).name for p in range(1, s.num_classes + 1)},
        "split_counts": result.split_counts,
    }
    atomic_write_bytes(out / "synth.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return result
