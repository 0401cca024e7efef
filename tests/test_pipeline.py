"""The whole DVC pipeline on a tiny synthetic config, in a temporary git repository.

Real `dvc repro` (every stage runs the real `skelact` command), real MLflow on the default SQLite
file of the project. Proves: the chain runs end to end, a second repro does nothing, changing one
model's parameter reruns only that model's train/evaluate stages and the report, MLflow holds the
expected runs, the report matches the evaluation results, each stage's `deps` are exactly the
code and package data it executes (every process is traced by tests/tracer/sitecustomize.py),
metrics files hold numbers only and every plot names its model, benchmark and seed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TRACER = Path(__file__).resolve().parent / "tracer"
pytestmark = pytest.mark.slow

MODELS = ["tscnn", "hcn", "hcnb", "tacnn", "dgcn"]  # the whole default matrix, tiny data


def _run(cmd: list[str], cwd: Path, env: dict, timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-6000:]}"
    return output


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A fresh git + DVC project holding this repository's dvc.yaml, params.yaml and sources."""
    root = tmp_path_factory.mktemp("pipeline")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(
        REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    (root / "data").mkdir()
    shutil.copy(REPO / "data" / ".gitignore", root / "data" / ".gitignore")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synth"].update(num_classes=4, samples_per_class=12)
    params["models"] = MODELS
    params["seeds"] = [0]
    quick = params["quick"]
    params["quick"] = {"common": quick["common"], **{m: {**quick[m], "epochs": 2} for m in MODELS}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("mlflow.db\nmlruns/\n")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")  # fmt: skip
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    trace = tmp_path_factory.mktemp("trace")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TRACER), env.get("PYTHONPATH")) if p)
    env["SKELACT_TRACE_DIR"] = str(trace)
    _run(["git", "init", "-q"], root, env)
    _run([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    _run([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "init"], root, env)
    started = time.perf_counter()
    first = _run([sys.executable, "-m", "dvc", "repro"], root, env, timeout=1500)
    seconds = time.perf_counter() - started
    return {"root": root, "env": env, "first": first, "seconds": seconds, "trace": trace}


def _dvc(project, *args) -> str:
    return _run([sys.executable, "-m", "dvc", *args], project["root"], project["env"])


def test_first_repro_runs_every_stage(project):
    expected = {"synth", "preprocess", "fuse", "report"}
    expected |= {f"{stage}@{m}-xsub-joint-0" for stage in ("train", "evaluate", "export")
                 for m in MODELS}  # fmt: skip
    assert _ran(project["first"]) == expected
    root = project["root"]
    assert json.loads((root / "fused" / "metrics.json").read_text()) == {}, "one stream"
    for model in MODELS:
        assert (root / "runs" / "xsub" / model / "joint" / "seed0" / "best.pt").is_file()
        metrics = json.loads(
            (root / "eval" / "xsub" / model / "joint" / "seed0" / "metrics.json").read_text()
        )
        assert metrics["num_samples"] > 0 and 0.0 <= metrics["top1"] <= 1.0
    print(f"first dvc repro: {project['seconds']:.1f} s")


def test_report_matches_the_evaluations(project):
    root = project["root"]
    report = json.loads((root / "reports" / "results.json").read_text())
    assert report["source"] == "synthetic"
    assert [row["model"] for row in report["rows"]] == MODELS
    for row in report["rows"]:
        metrics = json.loads(
            (root / "eval" / "xsub" / row["model"] / "joint" / "seed0" / "metrics.json").read_text()
        )
        assert row["top1"] == [pytest.approx(100 * metrics["top1"], abs=1e-3)]
        assert row["top1_std"] == 0.0 and row["params"] > 0 and row["gflops"] > 0
        assert row["published"]["mean"] > 80  # NTU 60 figures side by side
    assert "| HCN |" in (root / "reports" / "results.md").read_text()
    assert (root / "reports" / "accuracy_vs_gflops.png").stat().st_size > 1000
    shown = _dvc(project, "metrics", "show")
    assert "eval/xsub/hcn/joint/seed0/metrics.json" in shown and "top1" in shown


def test_mlflow_runs_hold_params_metrics_artifacts(project):
    import mlflow

    root = project["root"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("skelact/synthetic-xsub")
    assert experiment is not None
    assert experiment.artifact_location == (root / "mlruns").as_uri()
    runs = client.search_runs([experiment.experiment_id])
    by_model = {r.data.tags["model"]: r for r in runs}
    assert sorted(by_model) == sorted(MODELS) and len(runs) == len(MODELS)
    for model, run in by_model.items():
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"{model}-xsub-seed0"
        tags = run.data.tags
        assert tags["dvc.stage"] == f"train@{model}-xsub-joint-0"
        assert tags["eval.dvc.stage"] == f"evaluate@{model}-xsub-joint-0"
        assert tags["seed"] == "0" and tags["benchmark"] == "xsub" and "git.commit" in tags
        assert tags["torch.version"]
        assert run.data.params["epochs"] == "2" and run.data.params["model"] == model
        for key in ("loss", "lr", "val_top1", "val_top5", "samples_per_s", "eval_top1"):
            assert key in run.data.metrics, key
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"best.pt", "config.json", "metrics.jsonl", "eval"} <= artifacts
        eval_files = {a.path for a in client.list_artifacts(run.info.run_id, "eval")}
        assert "eval/confusion.png" in eval_files and "eval/predictions.csv" in eval_files
    logged = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert {m.source_run_id for m in logged} == {r.info.run_id for r in runs}


def test_second_repro_is_a_fast_no_op(project):
    started = time.perf_counter()
    output = _dvc(project, "repro")
    seconds = time.perf_counter() - started
    assert _ran(output) == set()
    assert "Data and pipelines are up to date." in output
    assert seconds < 30, f"no-op repro took {seconds:.1f} s"


def test_one_model_parameter_reruns_only_that_model(project):
    root = project["root"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["hcn"] = {"lr": 0.003}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = _dvc(project, "status")
    assert "train@hcn-xsub-joint-0" in status and "model.hcn" in status
    assert "tscnn" not in status and "preprocess" not in status
    output = _dvc(project, "repro")
    hcn = {f"{stage}@hcn-xsub-joint-0" for stage in ("train", "evaluate", "export")}
    assert _ran(output) == hcn | {"fuse", "report"}
    config = json.loads(
        (root / "runs" / "xsub" / "hcn" / "joint" / "seed0" / "config.json").read_text()
    )
    assert config["config"]["lr"] == 0.003
    assert "Data and pipelines are up to date." in _dvc(project, "status")


def test_metrics_files_hold_numbers_only(project):
    shown = json.loads(_dvc(project, "metrics", "show", "--json"))

    def leaves(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from leaves(v)
        else:
            yield value

    values = list(leaves(shown))
    assert values, shown
    strings = [v for v in values if v is None or isinstance(v, str | list)]
    assert not strings, f"non-numeric metrics: {strings[:10]}"


def test_plots_name_model_benchmark_and_seed(project):
    root = project["root"]
    for name, stage in _stages(root).items():
        for out in stage.outs:
            if not out.plot or not isinstance(out.plot, dict):
                continue
            model, benchmark, stream, seed = name.split("@", 1)[1].split("-")
            title = out.plot["title"]
            assert model in title and benchmark in title and f"seed {seed}" in title, title
            assert stream in title, title
    val = (root / "runs" / "xsub" / "hcn" / "joint" / "seed0" / "val_history.csv").read_text()
    assert "epoch,val_top1" in val.splitlines()[0]
    assert all(row.split(",")[1] for row in val.splitlines()[1:]), "only validated epochs"


# ---- custom data: the README's demo command, in the same project (runs after the tests above) --

#: The README's one command that tries custom data without any data of one's own.
DEMO = ["-S", "data.source=custom", "-S", "data.format=openpose", "-S", "data.layout=coco17",
        "-S", "benchmarks=[custom]"]  # fmt: skip
#: Two streams in the same experiment: every model trained on joints and on bones, then fused.
STREAMS = ["-S", "streams=[joint,bone]"]


@pytest.fixture(scope="module")
def custom(project):
    """The project switched to ``data.source: custom`` by ``dvc exp run``: synth writes coco17
    OpenPose JSON and the preprocess stage imports it; train, evaluate, export and report run
    unchanged on the ``custom`` benchmark, for the joint and the bone stream, which the fuse
    stage then combines."""
    stages_before = _code_deps(_stages(project["root"]))
    output = _run(
        [sys.executable, "-m", "dvc", "exp", "run", *DEMO, *STREAMS],
        project["root"],
        project["env"],
        timeout=1500,
    )
    return {"output": output, "stages_before": stages_before}


def test_custom_data_runs_through_the_same_pipeline(project, custom):
    root = project["root"]
    expected = {"synth", "preprocess", "fuse", "report"}
    expected |= {f"{s}@{m}-custom-{st}-0" for s in ("train", "evaluate", "export") for m in MODELS
                 for st in ("joint", "bone")}  # fmt: skip
    assert _ran(custom["output"]) == expected
    assert (root / "data" / "synth" / "labels.csv").is_file()
    imported = json.loads((root / "data" / "prepared" / "import_report.json").read_text())
    assert imported["format"] == "openpose" and imported["layout"] == "coco17"
    assert imported["split_method"] == "column" and imported["dims"] == 2
    classes = (root / "data" / "prepared" / "custom" / "classes.txt").read_text().splitlines()
    report = json.loads((root / "reports" / "results.json").read_text())
    assert report["source"] == "custom"
    assert [(r["model"], r["stream"]) for r in report["rows"]] == [
        (m, s) for m in MODELS for s in ("joint", "bone", "fused")
    ]
    assert all(not row.get("published") for row in report["rows"]), "no NTU columns"
    fused = json.loads((root / "fused" / "metrics.json").read_text())
    assert sorted(fused) == sorted(f"custom/{m}/seed0" for m in MODELS)
    for model in MODELS:  # the fusion is CTR-GCN's 0.6 joint + 0.6 bone on the raw scores
        joint, bone = (np.load(root / "eval" / "custom" / model / s / "seed0" / "scores.npz")
                       for s in ("joint", "bone"))  # fmt: skip
        out = root / "fused" / "results" / "custom" / model / "seed0"
        assert list(joint["names"]) == list(bone["names"])
        np.testing.assert_allclose(np.load(out / "scores.npz")["scores"],
                                   0.6 * joint["scores"] + 0.6 * bone["scores"],
                                   rtol=1e-5)  # fmt: skip
        top1 = float(((joint["scores"] + bone["scores"]).argmax(1) == joint["labels"]).mean())
        assert fused[f"custom/{model}/seed0"]["top1"] == pytest.approx(top1)
    # params and GFLOPs are counted on the model's own input: 2-D coco17, C x T x V x M
    assert {(r["input_shape"][1], r["input_shape"][3]) for r in report["rows"]} == {(2, 17)}
    per_class = (root / "eval" / "custom" / "hcn" / "bone" / "seed0" / "per_class.csv").read_text()
    assert classes[0] in per_class.splitlines()[1], "evaluation names the imported classes"
    info = json.loads(
        (root / "runs" / "custom" / "dgcn" / "bone" / "seed0" / "config.json").read_text()
    )
    assert info["config"]["stream"] == "bone"
    assert (info["layout"], info["dims"], info["num_classes"]) == ("coco17", 2, len(classes))


def _stages(root: Path) -> dict:
    """The stages as DVC itself resolves dvc.yaml (matrix expanded, templates filled)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {s.name: s for s in repo.index.stages}


def _code_deps(stages: dict) -> dict[str, list[str]]:
    """Each stage's deps inside src/ (the code it declares it runs)."""
    return {
        name: [p for p in (Path(d.def_path).as_posix() for d in stage.deps) if p.startswith("src/")]
        for name, stage in stages.items()
    }


def _covers(dep: str, used: str) -> bool:
    return used == dep or used.startswith(dep.rstrip("/") + "/")


def test_stage_deps_are_exactly_the_code_each_stage_runs(project, custom):
    """Every skelact module and package file a stage's processes used is in its deps, and every
    module dep is used (a module change reruns the stages that run it, and no other). One
    definition serves a whole matrix, so the second rule holds for the matrix as a whole (DGCN
    builds no CNN head, yet train@dgcn lists heads.py with the other models), and over both
    runs: the synthetic NTU one and the custom-data one (synth and preprocess run other code for
    custom data, so they list both). Data files are exempt from it: which missing-skeleton list
    or layout file is read depends on the data."""
    used: dict[str, set[str]] = defaultdict(set)
    for record in project["trace"].glob("*.json"):
        data = json.loads(record.read_text())
        if data["stage"]:
            used[data["stage"]] |= {f"src/skelact/{path}" for path in data["used"]}
    stages = {**custom["stages_before"], **_code_deps(_stages(project["root"]))}
    assert set(used) == set(stages), "every stage ran under the tracer"
    by_definition: dict[str, set[str]] = defaultdict(set)
    for name, files in used.items():
        by_definition[name.split("@")[0]] |= files
    problems = []
    for name, code in sorted(stages.items()):
        missing = sorted(f for f in used[name] if not any(_covers(d, f) for d in code))
        if missing:
            problems.append(f"{name} runs {missing} but does not depend on them")
        for dep in code:
            folder = project["root"] / dep
            files = (
                {p.relative_to(project["root"]).as_posix() for p in folder.rglob("*.py")}
                if folder.is_dir()
                else {dep} - {d for d in code if not d.endswith(".py")}
            )
            unused = sorted(files - by_definition[name.split("@")[0]])
            if unused:
                problems.append(f"{name} depends on {unused} but never runs them")
    assert not problems, "\n".join(problems)
