"""benchmarks/tracking.py end to end: both logging modes on a real SQLite store, same run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_times_both_logging_modes_in_fresh_processes() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "tracking.py"), "--rounds", "1"]
    cmd += ["--epochs", "3", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert "AVX2" in report["cpu"] and report["epochs"] == 3
    assert set(report["seconds"]) == {"synchronous", "asynchronous"}
    for parts in report["seconds"].values():
        assert set(parts) == {"process", "open", "log", "finish"}
        assert 0 < parts["open"] + parts["log"] + parts["finish"] < parts["process"]
