"""Per-machine choice of the weights' memory format (channels-last or NCHW), cached per CPU.

Why: which layout oneDNN runs these narrow skeleton convolutions fastest in depends on the CPU
(vector width, cache sizes) and the thread count: channels-last wins by 2x on some machines and
loses on others, so no fixed default is right everywhere. A short timing at first use (a few
interleaved training steps of each layout, on a throwaway copy of the model, with the RNG state
restored, so the real model and the run's random stream are untouched) picks the faster one; the
choice is cached in ``~/.cache/skelact/autotune.json`` keyed by CPU model, ATen's vector level,
torch version, thread count, model and input shape, so later runs on the machine reuse it.

Both layouts compute the same values up to float rounding. Deterministic runs skip the timing
and keep the build default, so two ``--deterministic`` runs on a machine are bit-identical
whatever the cache holds; CUDA keeps channels-last (what tensor cores want).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from skelact.atomic import atomic_write_text
from skelact.memory import keep_freed_memory
from skelact.models.common import set_memory_format

LAYOUTS = ("channels_last", "nchw")
_ROUNDS = 3
_MEMORY_KEPT = False


def keep_training_memory() -> bool:
    """Make glibc keep the memory a training step frees, for the next step (once per process).

    Why: by default glibc serves every buffer above 128 KB-32 MB with a fresh ``mmap`` and
    returns it on free, so each step's activations and gradients are page-faulted in again --
    measured at ~600k minor faults and 2+ s of kernel time per DGCN step on a 2-core AVX2
    machine, and a fifth of a CNN step. Serving them from the heap and never trimming it lets the
    steady-state step reuse its pages; the process keeps its peak footprint, as a caching
    allocator would. Values are unaffected, so deterministic runs stay bit-identical. Returns
    whether the setting was applied.
    """
    global _MEMORY_KEPT
    if not _MEMORY_KEPT:
        _MEMORY_KEPT = keep_freed_memory(mmap_max=0, trim_threshold=2**31 - 1, top_pad=64 * 2**20)
    return _MEMORY_KEPT


def cache_path() -> Path:
    """``$SKELACT_CACHE_DIR`` or ``$XDG_CACHE_HOME/skelact`` or ``~/.cache/skelact``, + file."""
    root = os.environ.get("SKELACT_CACHE_DIR")
    if root is None:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = str(Path(xdg) / "skelact")
    return Path(root) / "autotune.json"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


#: Caps on the instruction sets oneDNN / MKL use: a capped run is another machine to tune for.
ISA_CAPS = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def machine_key(model_name: str, input_shape: tuple[int, ...]) -> str:
    """What the choice depends on: CPU, vector levels, torch, threads, model, shape."""
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    return "|".join(
        (
            _cpu_model(),
            torch.backends.cpu.get_cpu_capability(),
            *caps,
            torch.__version__,
            f"threads={torch.get_num_threads()}",
            model_name,
            "x".join(str(d) for d in input_shape),
        )
    )


def _read_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: re-tune, never fail a run over a cache
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, key: str, layout: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**_read_cache(path), key: layout}
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only home only costs the timing next time


def current_layout(model: nn.Module) -> str:
    """``channels_last`` when every spatial conv weight is stored channels-last, else ``nchw``."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    last = torch.channels_last
    if convs and all(c.weight.is_contiguous(memory_format=last) for c in convs):
        return "channels_last"
    return "nchw"


def _time_layouts(model: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> str:
    """Interleaved train steps of both layouts on a copy; the layout with the lower median."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        probe = copy.deepcopy(model).train()
        x = torch.randn(input_shape)
        y = torch.randint(0, num_classes, (input_shape[0],))
        times: dict[str, list[float]] = {layout: [] for layout in LAYOUTS}
        for r in range(_ROUNDS + 1):
            for layout in LAYOUTS if r % 2 == 0 else LAYOUTS[::-1]:
                set_memory_format(probe, layout == "channels_last")
                start = time.perf_counter()
                F.cross_entropy(probe(x), y).backward()
                probe.zero_grad(set_to_none=True)
                if r:  # round 0 warms both layouts up (oneDNN primitive creation)
                    times[layout].append(time.perf_counter() - start)
    return min(LAYOUTS, key=lambda layout: statistics.median(times[layout]))


def tune_memory_format(
    model: nn.Module,
    input_shape: tuple[int, ...],
    *,
    deterministic: bool = False,
    use_cache: bool = True,
) -> str:
    """Store ``model``'s weights in the faster layout for this machine; returns the layout.

    ``input_shape`` is one training batch, ``N x C x T x V x M``. Call it once before training
    (and before building the optimizer is not required: the parameters stay the same objects).
    With ``deterministic=True`` or on CUDA the model keeps its build layout.
    """
    first = next(model.parameters(), None)
    if deterministic or first is None or first.device.type != "cpu":
        return current_layout(model)
    spec = getattr(model, "skelact_spec", None) or {}
    name = spec.get("name") or type(model).__name__
    key = machine_key(name, tuple(input_shape))
    path = cache_path()
    layout = _read_cache(path).get(key) if use_cache else None
    if layout not in LAYOUTS:
        num_classes = int((spec.get("options") or {}).get("num_classes", 2))
        layout = _time_layouts(model, tuple(input_shape), num_classes)
        if use_cache:
            _write_cache(path, key, layout)
    set_memory_format(model, layout == "channels_last")
    return layout
