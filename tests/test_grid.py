"""`skelact grid` against a real one-node SLURM cluster (slurmctld, slurmd, munge on this machine).

Each test builds a temporary git + DVC project from this repository's dvc.yaml with tiny synthetic
data and tiny epochs (as tests/test_pipeline.py does) and runs the real `skelact grid`. Proves: a
2-model x 2-seed grid runs as one job array, its outputs are recorded so that `dvc status` is clean
and `dvc repro` is a no-op, a second grid submits nothing; a failed element stays stale, is listed
with its job id and log, and only it is submitted again; a requeued (preempted) element resumes
from last.pt and ends with the metrics of an uninterrupted run; --dry-run submits nothing;
--launcher local runs the same plan here. Without SLURM (no root, no apt-get) the SLURM tests say
why and skip; CI (root) starts the cluster with .ci/slurm-up.sh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "SLURM_"))}
    env.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def _run(cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, (
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
        )
    return output


def _dvc(root: Path, *args: str) -> str:
    return _run([sys.executable, "-m", "dvc", *args], root)


def _grid(root: Path, *args: str, check: bool = True) -> str:
    return _run([sys.executable, "-m", "skelact", "grid", *args], root, check=check)


def make_project(root: Path, models: list[str], seeds: list[int], epochs: int) -> Path:
    """A fresh git + DVC project with this repo's pipeline, tiny data, no MLflow (speed)."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(
        REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (root / "data").mkdir()
    shutil.copy(REPO / "data" / ".gitignore", root / "data" / ".gitignore")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synth"].update(num_classes=4, samples_per_class=8)
    params["models"], params["seeds"] = models, seeds
    quick = params["quick"]
    params["quick"] = {
        "common": quick["common"],
        **{m: {**quick[m], "epochs": epochs} for m in models},
    }
    params["tracking"]["enabled"] = False
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\n")
    _run(["git", "init", "-q"], root)
    _run([sys.executable, "-m", "dvc", "init", "-q"], root)
    _run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "init"], root)
    return root


def _set_params(root: Path, update) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    update(params)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _newest_grid(root: Path) -> Path:
    return max((root / "grid").glob("2*"), key=lambda p: (p.stat().st_mtime, p.name))


def _our_jobs() -> str:
    return subprocess.run(["squeue", "-h", "-n", "skelact-grid,skelact-grid-finish"],
                          capture_output=True, text=True).stdout  # fmt: skip


@pytest.fixture(scope="session")
def slurm() -> None:
    """A reachable SLURM cluster: found up, or started with .ci/slurm-up.sh; else skip (why)."""
    if (
        shutil.which("sinfo")
        and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    ):
        return
    if os.geteuid() != 0:
        pytest.skip("SLURM is not running and starting it needs root (.ci/slurm-up.sh)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("SLURM is not installed and there is no apt-get to install slurm-wlm")
    proc = subprocess.run([str(REPO / ".ci" / "slurm-up.sh")], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"SLURM could not be started: {proc.stderr.strip()[-500:]}")


# ---------------------------------------------------------------- no cluster needed


def test_dry_run_prints_the_scripts_and_submits_nothing(tmp_path):
    root = make_project(tmp_path / "p", ["tscnn", "hcn"], [0, 1], epochs=1)
    out = _grid(root, "--dry-run", "--max-parallel", "2", "--gpus-per-task", "2",
                "--partition", "gpu", "--time", "00:10:00", "--cpus-per-task", "4")  # fmt: skip
    assert "would first run here: dvc repro synth preprocess" in out
    assert "#SBATCH --array=0-3%2" in out and "#SBATCH --gres=gpu:2" in out
    assert "#SBATCH --requeue" in out and "#SBATCH --partition=gpu" in out
    assert "#SBATCH --time=00:10:00" in out and "#SBATCH --cpus-per-task=4" in out
    assert "--dependency=afterany:<array job>" in out and "-m skelact.grid finish" in out
    items = ("tscnn-xsub-joint-0", "tscnn-xsub-joint-1", "hcn-xsub-joint-0", "hcn-xsub-joint-1")
    for item in items:
        assert f"train@{item}" in out and f"evaluate@{item}" in out
    assert "torchrun --standalone --nproc-per-node 2 -m skelact train --model hcn" in out
    assert "skelact test --checkpoint runs/xsub/hcn/joint/seed1/best.pt" in out  # the exact dvc cmd
    assert "nothing submitted (--dry-run)" in out
    assert not (root / "grid").exists() and not (root / "data" / "prepared").exists()


def test_unknown_stage_is_one_error_line(tmp_path):
    root = make_project(tmp_path / "p", ["tscnn"], [0], epochs=1)
    out = _grid(root, "--stages", "train,report", "--dry-run", check=False)
    assert (
        "error: dvc.yaml: 'report' is not a matrix stage; choose from evaluate, export, train"
    ) in out
    assert "Traceback" not in out


def test_local_launcher_runs_the_same_plan_here(tmp_path):
    root = make_project(tmp_path / "p", ["tscnn"], [0, 1], epochs=1)
    out = _grid(root, "--launcher", "local", "--max-parallel", "2")
    assert "bringing upstream stages up to date here: synth, preprocess" in out
    assert "4 stage(s) finished and recorded, 0 failed; downstream: ran" in out
    assert (root / "reports" / "results.json").is_file()
    assert "Data and pipelines are up to date." in _dvc(root, "status")
    logs = sorted(p.name for p in (_newest_grid(root) / "logs").iterdir())
    assert logs == ["local-finish.out", "local_0.out", "local_1.out"]
    assert "nothing to do" in _grid(root, "--launcher", "local")


# ---------------------------------------------------------------- real SLURM


@pytest.fixture(scope="module")
def grid2x2(slurm, tmp_path_factory):
    """A 2-model x 2-seed grid submitted to SLURM as one array, waited for."""
    root = make_project(tmp_path_factory.mktemp("grid") / "p", ["tscnn", "hcn"], [0, 1], epochs=2)
    started = time.perf_counter()
    out = _grid(root, "--max-parallel", "2", "--wait")
    return {"root": root, "out": out, "seconds": time.perf_counter() - started}


def test_grid_runs_as_one_array_and_leaves_dvc_clean(grid2x2):
    root, out = grid2x2["root"], grid2x2["out"]
    assert re.search(r"submitted array job \d+: 4 element\(s\)", out), out
    assert "8 stage(s) finished and recorded, 0 failed; downstream: ran" in out
    plan = json.loads((_newest_grid(root) / "plan.json").read_text())
    array = plan["array_job"]
    assert sorted(p.name for p in (_newest_grid(root) / "logs").glob(f"{array}_*.out")) == [
        f"{array}_{i}.out" for i in range(4)
    ]
    for model in ("tscnn", "hcn"):
        for seed in (0, 1):
            run = f"xsub/{model}/joint/seed{seed}"
            assert (root / "runs" / run / "best.pt").is_file()
            assert (root / "eval" / run / "metrics.json").is_file()
    report = json.loads((root / "reports" / "results.json").read_text())
    assert [row["seeds"] for row in report["rows"]] == [[0, 1], [0, 1]]
    assert "Data and pipelines are up to date." in _dvc(root, "status")
    assert "Running stage" not in _dvc(root, "repro")
    print(f"2x2 grid on SLURM: {grid2x2['seconds']:.1f} s")


def test_second_grid_submits_nothing(grid2x2):
    out = _grid(grid2x2["root"])
    assert "nothing to do" in out and "submitted" not in out
    assert _our_jobs() == ""


def test_failed_element_is_listed_and_only_it_is_resubmitted(grid2x2):
    root = grid2x2["root"]
    _set_params(root, lambda p: p["model"].update(hcn={"lr": 0.002}))  # both hcn items stale
    blocked = root / "runs" / "xsub" / "hcn" / "joint" / "seed1"
    shutil.rmtree(blocked)
    blocked.write_text("not a folder")  # hcn seed 1 cannot write its outputs: it fails
    out = _grid(root, "--wait", check=False)
    assert re.search(r"submitted array job \d+: 2 element\(s\)", out), out
    array = json.loads((_newest_grid(root) / "plan.json").read_text())["array_job"]
    assert "2 stage(s) finished and recorded, 2 failed; downstream: skipped" in out
    failed = re.search(
        rf"FAILED train@hcn-xsub-joint-1  job ({array}_\d)  \(exit 1\)  log (\S+)", out
    )
    assert failed, out
    assert Path(failed.group(2)).is_file() and failed.group(1) in failed.group(2)
    assert re.search(r"FAILED evaluate@hcn-xsub-joint-1  job \S+  \(never ran\)", out), out
    status = _dvc(root, "status")
    assert "train@hcn-xsub-joint-1" in status and "train@hcn-xsub-joint-0" not in status
    assert "FAILED train@hcn-xsub-joint-1" in _grid(root, "--status")

    blocked.unlink()
    out = _grid(root, "--wait")
    assert "previous grid: " in out and "FAILED train@hcn-xsub-joint-1" in out
    assert re.search(r"submitted array job \d+: 1 element\(s\)", out), out
    assert "2 stage(s) finished and recorded, 0 failed; downstream: ran" in out
    assert "Data and pipelines are up to date." in _dvc(root, "status")


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_requeued_element_resumes_with_the_metrics_of_an_uninterrupted_run(slurm, tmp_path):
    """Preempted twice: `scontrol requeue` (SLURM's SIGTERM, SLURM requeues), then the time-limit
    warning (`--signal=B:USR1`, here sent with `scancel -b -s USR1`: the element requeues itself).
    Each time training checkpoints last.pt and the next attempt continues with --resume."""
    epochs = 6
    root = make_project(tmp_path / "p", ["tscnn"], [0], epochs=epochs)
    out = _grid(root)
    array = re.search(r"submitted array job (\d+)", out).group(1)
    finish_job = re.search(r"submitted finishing job (\d+)", out).group(1)
    run_dir = root / "runs" / "xsub" / "tscnn" / "joint" / "seed0"
    log_path = _newest_grid(root) / "logs" / f"{array}_0.out"
    busy = _grid(root, check=False)  # a second grid now would submit the same stages again
    assert "grid still queued or running" in busy and "submitted" not in busy

    def epochs_done() -> int:
        path = run_dir / "metrics.jsonl"
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def resumed_after() -> int | None:
        found = re.findall(r"after epoch (\d+)", log_path.read_text()) if log_path.is_file() else []
        return int(found[-1]) if found else None

    _wait_for(lambda: (run_dir / "last.pt").is_file() and epochs_done() >= 1, 300, "epoch 1")
    assert epochs_done() < epochs, "training finished before it could be preempted"
    subprocess.run(["scontrol", "requeue", f"{array}_0"], check=True)
    _wait_for(lambda: resumed_after() is not None, 300, "the requeued element to resume")
    first_resume = resumed_after()
    _wait_for(lambda: epochs_done() > first_resume, 300, "an epoch after resuming")
    assert epochs_done() < epochs, "training finished before the time-limit signal"
    subprocess.run(["scancel", "-b", "-s", "USR1", f"{array}_0"], check=True)
    _wait_for(lambda: not _our_jobs() and (log_path.parent.parent / "summary.json").is_file(),
              600, f"the grid (finishing job {finish_job}) to end")  # fmt: skip

    grid_dir = _newest_grid(root)
    summary = json.loads((grid_dir / "summary.json").read_text())
    assert summary["failed"] == [] and summary["downstream"]["result"] == "ran", summary
    status = [
        json.loads(line) for line in (grid_dir / "status" / "0.jsonl").read_text().splitlines()
    ]
    assert [(s["stage"], s["rc"], s["restarts"]) for s in status] == [
        ("train@tscnn-xsub-joint-0", 0, 2), ("evaluate@tscnn-xsub-joint-0", 0, 2)
    ]  # fmt: skip
    log = log_path.read_text()
    assert "(attempt 1)" in log and "(attempt 2)" in log and "(attempt 3)" in log
    commands = [line for line in log.splitlines() if line.startswith("== train@")]
    assert [c.count("--resume") for c in commands] == [0, 1, 1]
    assert "Data and pipelines are up to date." in _dvc(root, "status")

    # The same command, uninterrupted, in another folder: same history, same final metrics.
    cmd = re.search(r"== train@tscnn-xsub-joint-0 \(attempt 1\): (.*)", log).group(1)
    reference = tmp_path / "uninterrupted"
    _run(cmd.replace(str(run_dir.relative_to(root)), str(reference)).split(), root)
    resumed = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    straight = [json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()]
    keys = ("epoch", "loss", "val_loss", "val_top1", "val_top5")
    assert [{k: r[k] for k in keys} for r in resumed] == [{k: r[k] for k in keys} for r in straight]
    assert len(resumed) == epochs
    final = json.loads((run_dir / "summary.json").read_text())
    reference_final = json.loads((reference / "summary.json").read_text())
    for key in ("best_epoch", "best_top1", "final_loss", "final_top1", "last_epoch"):
        assert final[key] == reference_final[key], key
