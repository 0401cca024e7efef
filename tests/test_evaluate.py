"""``skelact test`` / ``predict``: output files, agreement with training's validation, foreign
checkpoints, MLflow logging into the training run, and 2-process gloo DDP training."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from helpers import dead_pid, make_pickles
from skelact.engine.evaluate import EvalConfig, evaluate
from skelact.engine.predict import predict_file
from skelact.engine.recipes import TrainConfig
from skelact.engine.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = make_pickles(root / "data", num_train=32, num_val=16)
    out = root / "run"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = train(
        TrainConfig(
            model="tscnn",
            train_path=str(data[0]),
            val_path=str(data[1]),
            out_dir=str(out),
            epochs=2,
            batch_size=8,
            lr=3e-3,
            scale_lr=False,
            clip_len=16,
            val_interval=1,
            quiet=True,
            track=True,
            tracking_uri=uri,
            experiment="engine-test",
            seed=1,
        )  # fmt: skip
    )
    return root, data, out, uri, result


def test_evaluate_matches_training_validation_and_writes_files(trained, tmp_path):
    root, data, out, uri, result = trained
    ev = evaluate(EvalConfig(checkpoint=str(out / "last.pt"), data=str(data[1]),
                             out_dir=str(tmp_path), track=False))  # fmt: skip
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert ev.top1 == last["val_top1"] and ev.top5 == last["val_top5"]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["num_samples"] == 16 and 0 <= m["top1"] <= m["top5"] <= 1
    assert 0 <= m["mean_class_accuracy"] <= 1 and m["clip_len"] == 16
    assert all(isinstance(v, int | float) and not isinstance(v, bool) for v in m.values()), m
    info = json.loads((tmp_path / "eval_info.json").read_text())
    assert info["model"] == "tscnn" and info["benchmark"] == "xsub" and info["seed"] == 1
    assert info["checkpoint"] == str(out / "last.pt") and "metrics" in info["files"]
    with open(tmp_path / "predictions.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 16 and rows[0]["sample"].startswith("S001C001P")
    assert sum(int(r["correct"]) for r in rows) == round(ev.top1 * 16)
    with open(tmp_path / "per_class.csv") as fh:
        per_class = list(csv.DictReader(fh))
    assert [r["action"] for r in per_class][:2] == ["drink water", "eat meal/snack"]
    assert sum(int(r["support"]) for r in per_class) == 16
    conf = (tmp_path / "confusion.csv").read_text().splitlines()
    assert len(conf) == 5
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_mmaction_checkpoint_reads_its_model_from_meta_and_gives_same_metrics(trained, tmp_path):
    import torch

    from skelact.models import build_from_checkpoint, export_mmaction_checkpoint

    root, data, out, uri, result = trained
    foreign = export_mmaction_checkpoint(build_from_checkpoint(out / "last.pt"), tmp_path / "m.pth")
    own = evaluate(EvalConfig(checkpoint=str(out / "last.pt"), data=str(data[1]),
                              out_dir=str(tmp_path / "a"), track=False))  # fmt: skip
    exported = evaluate(EvalConfig(checkpoint=str(foreign), data=str(data[1]),
                                   out_dir=str(tmp_path / "b"), track=False,
                                   clip_ratio=0.9))  # fmt: skip
    assert (exported.top1, exported.top5) == (own.top1, own.top5)
    # Without the meta that names the model (a SkelAct/MMAction2 file), the name is required.
    bare = tmp_path / "bare.pth"
    torch.save({"state_dict": torch.load(foreign, weights_only=True)["state_dict"]}, bare)
    with pytest.raises(ValueError, match="model name"):
        evaluate(EvalConfig(checkpoint=str(bare), data=str(data[1]), out_dir=str(tmp_path / "c"),
                            track=False))  # fmt: skip
    other = evaluate(EvalConfig(checkpoint=str(bare), data=str(data[1]), model="tscnn",
                                out_dir=str(tmp_path / "d"), track=False, clip_len=16,
                                clip_ratio=0.9))  # fmt: skip
    assert (other.top1, other.top5) == (own.top1, own.top5)


def test_tracking_training_run_and_eval_into_same_run(trained, tmp_path):
    import mlflow

    root, data, out, uri, result = trained
    run_id = result.mlflow_run_id
    assert run_id and json.loads((out / "run_info.json").read_text())["mlflow_run_id"] == run_id
    import torch

    assert torch.load(out / "last.pt", weights_only=True)["mlflow_run_id"] == run_id
    ev = evaluate(EvalConfig(checkpoint=str(out / "best.pt"), data=str(data[1]),
                             out_dir=str(tmp_path), tracking_uri=uri,
                             experiment="engine-test"))  # fmt: skip
    assert ev.mlflow_run_id == run_id
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "tscnn" and run.data.params["effective_batch_size"] == "8"
    assert run.data.tags["model"] == "tscnn" and run.data.tags["seed"] == "1"
    assert run.data.params["benchmark"] == run.data.tags["benchmark"] == "xsub"
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id], output_format="list"
    )
    assert [m.name for m in logged if m.source_run_id == run_id] == ["skelact-tscnn"]
    assert {"loss", "lr", "val_top1", "val_top5", "samples_per_s", "eval_top1"} <= set(
        run.data.metrics
    )
    assert len(client.get_metric_history(run_id, "val_top1")) == 2
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"best.pt", "metrics.jsonl", "config.json", "eval"} <= names
    assert "confusion.png" in {Path(a.path).name for a in client.list_artifacts(run_id, "eval")}


def test_predict_agrees_with_evaluate(trained, tmp_path, reference_dir):
    from skelact.data.preprocess import load_sample

    root, data, out, uri, result = trained
    raw = reference_dir / "ntu_prep" / "raw" / "S001C001P001R001A001.skeleton"
    pred = predict_file(raw, out / "last.pt", top_k=3, device="cpu")
    assert pred.label == 0 and pred.label_name == "drink water" and len(pred.top) == 3
    probs = [p for _, _, p in pred.top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
    pkl = tmp_path / "one.pkl"
    with open(pkl, "wb") as fh:
        pickle.dump([load_sample(raw)], fh)
    evaluate(EvalConfig(checkpoint=str(out / "last.pt"), data=str(pkl), out_dir=str(tmp_path),
                        track=False))  # fmt: skip
    with open(tmp_path / "predictions.csv") as fh:
        row = next(csv.DictReader(fh))
    assert int(row["top1_class"]) == pred.top[0][0]
    assert float(row["top1_score"]) == pytest.approx(pred.top[0][2], abs=1e-6)
    cli = subprocess.run(
        [sys.executable, "-m", "skelact", "predict", str(raw), "--checkpoint",
         str(out / "last.pt"), "--device", "cpu"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    assert "1. A00" in cli.stdout and "%" in cli.stdout


def _console_script() -> list[str]:
    """The installed ``skelact`` script itself: what ``$(which skelact)`` names in a venv."""
    script = Path(sysconfig.get_path("scripts")) / "skelact"
    assert script.is_file(), f"console script not installed at {script}"
    return [str(script)]


@pytest.mark.slow
@pytest.mark.parametrize("launch", ["module", "console_script"])
def test_two_process_gloo_ddp_matches_single_process_eval(trained, tmp_path, launch):
    """Both documented launches: `torchrun -m skelact train` and `torchrun $(which skelact)`."""
    root, data, _, _, _ = trained
    out = tmp_path / "ddp"
    program = ["-m", "skelact"] if launch == "module" else _console_script()
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        *program, "train", "--model", "tscnn", "--train", str(data[0]), "--val",
        str(data[1]), "--out-dir", str(out), "--epochs", "2", "--batch-size", "8",
        "--clip-len", "16", "--val-interval", "1", "--no-track", "--device", "cpu",
        "--val-batch-size", "6", "--threads", "1",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2]  # rank 0 alone wrote
    s = json.loads((out / "summary.json").read_text())
    assert s["world_size"] == 2 and s["per_rank_batch_size"] == 4
    assert s["lr"] == pytest.approx(1e-3 * 8 / 64)  # linear scaling to the global batch
    assert "global batch 8 = 4/rank x 2 rank(s)" in done.stderr
    # 16 val samples over 2 ranks in batches of 3: uneven shards, each sample counted once
    ev = evaluate(EvalConfig(checkpoint=str(out / "last.pt"), data=str(data[1]),
                             out_dir=str(tmp_path / "ev"), track=False))  # fmt: skip
    assert (ev.top1, ev.top5) == (recs[-1]["val_top1"], recs[-1]["val_top5"])


def test_test_command_follows_the_tracking_settings_of_params(trained, tmp_path):
    """The evaluate stage passes --params: tracking.enabled=false must mean no MLflow at all."""
    root, data, out, _, _ = trained
    env = {**os.environ, "MLFLOW_TRACKING_URI": "bogus-scheme://nowhere"}
    base = [sys.executable, "-m", "skelact", "test", "--checkpoint", str(out / "last.pt"),
            "--data", str(data[1]), "--out-dir", str(tmp_path / "ev"), "--device", "cpu",
            "--quiet"]  # fmt: skip
    off = tmp_path / "off.yaml"
    off.write_text("tracking: {enabled: false}\n")
    done = subprocess.run([*base, "--params", str(off)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["num_samples"] == 16
    # without the params file, tracking is on and the bad URI is reported before evaluating
    done = subprocess.run(base, capture_output=True, text=True, env=env)
    assert done.returncode != 0 and "bogus-scheme" in done.stderr


def test_refuses_non_finite_empty_and_corrupt_checkpoints(trained, tmp_path, reference_dir):
    import torch

    from skelact.engine.safety import NonFiniteError
    from skelact.models.checkpoint import CheckpointError

    root, data, out, _, _ = trained
    raw = reference_dir / "ntu_prep" / "raw" / "S001C001P001R001A001.skeleton"
    ckpt = torch.load(out / "last.pt", weights_only=True)
    key = sorted(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())[-1]
    ckpt["state_dict"][key][..., 0] = float("nan")
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)
    expected = rf"^{bad}: the weights are not finite \(first bad tensor: {key}\)"
    with pytest.raises(NonFiniteError, match=expected):
        evaluate(EvalConfig(checkpoint=str(bad), data=str(data[1]), out_dir=str(tmp_path / "e"),
                            track=False))  # fmt: skip
    assert not (tmp_path / "e" / "metrics.json").exists()
    with pytest.raises(NonFiniteError, match=expected):
        predict_file(raw, bad, device="cpu")
    empty, garbage = tmp_path / "empty.pt", tmp_path / "garbage.pt"
    empty.write_bytes(b"")
    garbage.write_bytes(bytes(range(256)) * 4)
    for path, reason in ((empty, "is empty (0 bytes)"),
                         (garbage, "cannot read the checkpoint: not a weights-only"),
                         (tmp_path, "is a folder, expected a checkpoint file")):  # fmt: skip
        with pytest.raises(CheckpointError, match=rf"^{path}: {re.escape(reason)}") as err:
            predict_file(raw, path, device="cpu")
        assert "\n" not in str(err.value)


def test_predict_refuses_a_folder_and_a_file_without_bodies(trained, tmp_path, reference_dir):
    from skelact.engine.evaluate import EvaluationError

    root, data, out, _, _ = trained
    with pytest.raises(EvaluationError, match=rf"^{tmp_path}: is a folder, expected a .skeleton"):
        predict_file(tmp_path, out / "last.pt", device="cpu")
    empty = tmp_path / "S001C001P001R001A001.skeleton"
    empty.write_text("3\n0\n0\n0\n")
    with pytest.raises(EvaluationError, match=r"no body in any of its 3 frame\(s\)"):
        predict_file(empty, out / "last.pt", device="cpu")


def test_labels_outside_the_model_classes_name_the_sample(trained, tmp_path):
    from helpers import make_samples
    from skelact.engine.evaluate import EvaluationError

    root, data, out, _, _ = trained
    samples = make_samples(3, 4, seed=5)
    samples[1]["label"] = 7
    pkl = tmp_path / "seven.pkl"
    pkl.write_bytes(pickle.dumps(samples))
    with pytest.raises(EvaluationError, match=r"sample S001C001P002R001A002 has label 7, but the "
                       r"model in .*last.pt has 4 classes"):  # fmt: skip
        evaluate(EvalConfig(checkpoint=str(out / "last.pt"), data=str(pkl),
                            out_dir=str(tmp_path / "e"), track=False))  # fmt: skip


def test_one_writer_per_eval_folder_and_stale_temps_removed(trained, tmp_path):
    from skelact.errors import OutputBusyError

    root, data, out, _, _ = trained
    folder = tmp_path / "ev"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from skelact.locking import output_lock\n"
         "with output_lock(sys.argv[1], 'test'):\n print('held', flush=True); time.sleep(60)",
         str(folder)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        cfg = EvalConfig(checkpoint=str(out / "last.pt"), data=str(data[1]), out_dir=str(folder),
                         track=False)  # fmt: skip
        with pytest.raises(OutputBusyError, match=rf"another test run \(pid {holder.pid} "):
            evaluate(cfg)
    finally:
        holder.kill()
        holder.wait()
    stale = folder / f".metrics.json.x1.tmp-{dead_pid()}"
    stale.write_text("{")
    evaluate(cfg)  # the dead holder's lock is stale: taken over
    assert not stale.exists() and (folder / "metrics.json").is_file()
