"""Engine support: deterministic kernels and friends (the engine tests' pickles are
``helpers.make_pickles``)."""

from __future__ import annotations


def test_deterministic_kernels_set_aten_without_importing_inductor() -> None:
    """Eager training turns on deterministic kernels without the 1-2 s Inductor import; a run
    that compiles also sets Inductor's own flag (checked in a fresh interpreter)."""
    import subprocess
    import sys

    probe = (
        "import sys, torch\n"
        "from skelact.engine.determinism import deterministic_kernels\n"
        "deterministic_kernels(True)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert 'torch._inductor.config' not in sys.modules\n"
        "deterministic_kernels(True, compiling=True)\n"
        "import torch._inductor.config as c\n"
        "assert c.deterministic\n"
        "deterministic_kernels(False)\n"
        "assert not torch.are_deterministic_algorithms_enabled() and not c.deterministic\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)
