"""What keeps a run's outputs trustworthy: finite weights only, and a clean stop on a signal.

A diverged run (NaN or inf weights) must never leave a checkpoint that ``skelact test`` would
score as if it were a model, so weights are checked before every save and after every load.
SIGTERM (what ``timeout``, docker and SLURM send before a kill) is treated like SIGINT: the
handler only records the signal, the training loop stops at the next step boundary, keeps the
last complete checkpoint and raises :class:`~skelact.errors.InterruptedRun`, so a requeued job
continues with ``--resume`` exactly where an uninterrupted run would be.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from skelact.errors import SkelactError


class TrainingError(SkelactError):
    """A run cannot start or continue: bad labels, a diverged loss, settings that do not fit."""


class NonFiniteError(TrainingError):
    """A loss or a weight is NaN or infinite."""


def first_nonfinite(named: Iterable[tuple[str, torch.Tensor]]) -> str | None:
    """Name of the first floating-point tensor holding a NaN or inf, or None.

    One device sync for all tensors (the per-tensor flags are stacked), so checking a model on a
    GPU before each save costs one round trip, not one per parameter.
    """
    names, flags = [], []
    for name, tensor in named:
        if torch.is_tensor(tensor) and tensor.is_floating_point():
            names.append(name)
            flags.append(torch.isfinite(tensor).all())
    if not flags:
        return None
    bad = (~torch.stack([f.to(flags[0].device) for f in flags]).cpu()).nonzero()
    return names[int(bad[0])] if len(bad) else None


def check_finite_weights(model: torch.nn.Module, where: str) -> None:
    """Raise :class:`NonFiniteError` naming ``where`` and the first non-finite tensor."""
    bad = first_nonfinite(model.state_dict().items())
    if bad is not None:
        raise NonFiniteError(
            f"{where}: the weights are not finite (first bad tensor: {bad}); the run diverged"
        )


class StopRequest:
    """The signal that asked the run to stop (``signum``), or None while none has come."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""


@contextmanager
def stop_on_signals(on_request=None) -> Iterator[StopRequest]:
    """Within the block, SIGINT and SIGTERM only set ``request.signum`` (the first time).

    A second signal restores the default behaviour and re-delivers it, so an impatient user (or
    a scheduler's kill) still ends the process at once. Outside the main thread, where Python
    cannot install handlers, the block runs with the process's handlers unchanged.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in watched}

    def handler(signum, frame) -> None:
        if request.signum is not None:
            for s, h in previous.items():
                signal.signal(s, h)
            signal.raise_signal(signum)
            return
        request.signum = signum
        if on_request is not None:
            on_request(request)

    for s in watched:
        signal.signal(s, handler)
    try:
        yield request
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
