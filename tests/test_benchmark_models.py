"""benchmarks/models.py end to end: reference, this checkout and a git revision, same run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_benchmark_times_reference_checkout_and_baseline_side_by_side(tmp_path: Path) -> None:
    env = dict(os.environ, SKELACT_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "models.py"), "--models", "hcnb"]
    cmd += ["--batch", "2", "--rounds", "2", "--steps", "1", "--threads", "1"]
    cmd += ["--baseline-rev", "HEAD", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cpu"]["model_name"] and "avx2" in report["cpu"]
    (row,) = report["rows"]
    assert set(row["samples_per_s"]) == {"reference", "skelact", "baseline"}
    assert row["vs_reference"]["reference"] == 1.0
    assert row["layouts"]["reference"] == "nchw"
    assert report["cpu"]["model_name"] in row["cpu"]
    worktrees = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "skelact-bench-" not in worktrees  # the temporary checkout is gone


@pytest.mark.slow
def test_isa_cap_reaches_the_workers_and_is_printed(tmp_path: Path) -> None:
    """``--isa avx2`` times AVX2 code paths (ATen, oneDNN, MKL) and says so beside the figure."""
    env = dict(os.environ, SKELACT_CACHE_DIR=str(tmp_path / "cache"))
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"):
        env.pop(name, None)
    cmd = [sys.executable, str(ROOT / "benchmarks" / "models.py"), "--models", "hcnb"]
    cmd += ["--impls", "skelact", "--batch", "2", "--rounds", "1", "--steps", "1"]
    cmd += ["--threads", "1", "--no-tune", "--isa", "avx2", "--json"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cpu"]["isa_caps"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    if report["cpu"]["avx2"]:
        assert report["cpu"]["aten_capability"] == "AVX2"
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in report["rows"][0]["cpu"]


@pytest.mark.slow
def test_pyskl_baselines_are_timed_without_a_reference(tmp_path: Path) -> None:
    """ST-GCN++ and CTR-GCN have no SkelAct transcription: their rows time this checkout only,
    at PYSKL's T = 100, printed beside the CPU (the reference worker still serves the others)."""
    env = dict(os.environ, SKELACT_CACHE_DIR=str(tmp_path / "cache"))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "models.py")]
    cmd += ["--models", "stgcnpp", "ctrgcn", "hcnb", "--batch", "2", "--rounds", "1"]
    cmd += ["--threads", "1", "--no-tune"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ")
    cpu = lines[0].removeprefix("CPU: ").split(" (")[0]
    rows = {line.split()[0]: line for line in lines if line.split()[1:2] == ["train"]}
    assert set(rows) == {"stgcnpp", "ctrgcn", "hcnb"}
    for name in ("stgcnpp", "ctrgcn"):
        assert "skelact" in rows[name] and "reference" not in rows[name], rows[name]
        assert rows[name].endswith(f"[{cpu}]")
        rate = float(rows[name].split("skelact")[1].split("/s")[0])
        assert rate > 0
    assert "reference" in rows["hcnb"] and "(x1.00)" in rows["hcnb"]
