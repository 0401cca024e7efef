"""MLflow tracking against a real SQLite store in a temporary folder (no mocks)."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from skelact.errors import InterruptedRun, SkelactError
from skelact.tracking import (
    NullTracker,
    TrackingError,
    check_tracking_uri,
    default_tracking_uri,
    flatten_params,
    is_local_store,
    open_eval_run,
    open_run,
    project_root,
    resolve_tracking_uri,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite store for the module (creating the schema costs seconds)."""
    folder = tmp_path_factory.mktemp("mlflow")
    uri = "sqlite:///" + (folder / "mlflow.db").as_posix()
    check_tracking_uri(uri)
    return uri


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_STAGE", "SLURM_JOB_ID",
                 "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def _client(uri):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri)


def _open(store, experiment="skelact/test", **kwargs):
    return open_run(enabled=True, experiment=experiment, tracking_uri=store,
                    system_metrics=False, **kwargs)  # fmt: skip


def test_run_logs_params_metrics_artifacts_and_tags(store, tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@hcn-xsub-0")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "812")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    artifact = tmp_path / "config.json"
    artifact.write_text('{"a": 1}')
    with open_run(
        enabled=True,
        experiment="skelact/test-xsub",
        run_name="hcn-s0",
        tracking_uri=store,
        tags={"model": "hcn", "seed": 0, "skip": None},
        system_metrics=False,
    ) as tracker:
        assert tracker.enabled and tracker.run_id
        tracker.log_params({"lr": 0.001, "lr_steps": [7, 9], "model_options": {"dropout": 0.5},
                            "decay_mult": {"backbone.fc7": 10.0}})  # fmt: skip
        for epoch in range(1, 4):
            tracker.log_metrics({"loss": 1.0 / epoch, "val_top1": None, "ok": True}, step=epoch)
        tracker.log_artifact(artifact)
        tracker.log_artifact(artifact, artifact_path="eval")
        tracker.log_dict({"x": 1}, "extra/info.json")
        run_id = tracker.run_id
    run = _client(store).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.001", "lr_steps": "[7, 9]", "model_options.dropout": "0.5",
                               "decay_mult.backbone.fc7": "10.0"}  # fmt: skip
    assert run.data.metrics == {"loss": pytest.approx(1 / 3)}  # None/bool values are skipped
    history = _client(store).get_metric_history(run_id, "loss")
    assert [(m.step, round(m.value, 4)) for m in history] == [(1, 1.0), (2, 0.5), (3, 0.3333)]
    tags = run.data.tags
    assert tags["model"] == "hcn" and tags["seed"] == "0" and "skip" not in tags
    assert tags["dvc.stage"] == "train@hcn-xsub-0"
    assert tags["slurm_job_id"] == "812_3"
    assert tags["torch.version"] == torch.__version__
    assert tags["mlflow.runName"] == "hcn-s0"
    paths = {a.path for a in _client(store).list_artifacts(run_id)}
    assert paths == {"config.json", "eval", "extra"}
    experiment = _client(store).get_experiment(run.info.experiment_id)
    assert experiment.name == "skelact/test-xsub"
    # Artifacts sit next to the database, not under the current folder.
    db_folder = Path(store[len("sqlite:///") :]).parent
    assert experiment.artifact_location == (db_folder / "mlruns").as_uri()


def test_every_dict_param_has_one_shape():
    """Empty and filled dicts follow the same rule (leaves as dotted keys), so a setting never
    appears once as ``decay_mult={}`` and once as ``decay_mult.backbone.fc7``."""
    flat = flatten_params({"decay_mult": {}, "a": {"b": {"c": 1}}, "d": None, "e": "x" * 7000})
    assert flat == {"a.b.c": "1", "d": "None", "e": flat["e"]}
    assert len(flat["e"]) == 6000 and flat["e"].endswith("[truncated]")


def test_slurm_job_id_tag_without_array(store, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    with _open(store) as tracker:
        pass
    assert _client(store).get_run(tracker.run_id).data.tags["slurm_job_id"] == "4711"


def test_resume_continues_the_same_run(store, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@hcn-xsub-0")
    with _open(store, "skelact/test-resume") as first:
        first.log_params({"epochs": 4})
        first.log_metrics({"loss": 2.0}, step=1)
        run_id = first.run_id
    with _open(store, "skelact/test-resume", run_id=run_id) as again:
        assert again.run_id == run_id
        assert _client(store).get_run(run_id).info.status == "RUNNING"
        again.log_params({"epochs": 4})  # same value again: accepted silently
        again.flush()
        with pytest.warns(RuntimeWarning, match="log_params failed.*epochs"):
            again.log_params({"epochs": 8})
            again.flush()
        again.log_metrics({"loss": 1.0}, step=2)
    client = _client(store)
    runs = client.search_runs([client.get_run(run_id).info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]  # no duplicate run
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["epochs"] == "4"
    assert run.data.tags["skelact.resumed"] == "true"
    assert run.data.tags["dvc.stage"] == "train@hcn-xsub-0"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2]


def test_resume_of_unknown_run_starts_a_new_one(store):
    with pytest.warns(RuntimeWarning, match="not found"):
        tracker = _open(store, "skelact/test-resume", run_id="0" * 32)
    with tracker:
        assert tracker.run_id != "0" * 32
    assert _client(store).get_run(tracker.run_id).data.tags["skelact.resumed_from"] == "0" * 32


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (FloatingPointError("loss became nan"), "FAILED"),
        (KeyboardInterrupt(), "KILLED"),
        (InterruptedRun("stopped by SIGTERM", 15), "KILLED"),
    ],  # fmt: skip
)
def test_exception_ends_the_run_with_its_status(store, error, status):
    with pytest.raises(type(error)), _open(store, "skelact/test-fail") as tracker:
        tracker.log_metrics({"loss": 1.0}, step=1)
        raise error
    run = _client(store).get_run(tracker.run_id)
    assert run.info.status == status
    assert run.data.metrics["loss"] == 1.0  # what was logged before the crash is kept


def test_disabled_tracker_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_run(enabled=False, experiment="", tracking_uri="nonsense://x") as tracker:
        assert isinstance(tracker, NullTracker) and not tracker.enabled
        assert tracker.run_id is None
        tracker.log_params({"a": 1})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.log_artifact(tmp_path / "missing.txt")
        tracker.log_input_dataset("train.pkl", "abc", "xsub_train", 10)
        tracker.log_model(torch.nn.Linear(2, 2), np.zeros((1, 2), np.float32))
        tracker.set_tags({"a": "b"})
    tracker.finish()
    assert list(tmp_path.iterdir()) == []  # no database, no mlruns folder
    assert open_eval_run(enabled=False, experiment="x", run_id="abc").run_id is None


def test_logging_failures_warn_once_and_never_raise(store, tmp_path):
    with _open(store, "skelact/test-flaky") as tracker:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tracker.log_artifact(tmp_path / "missing-1.pt")
            tracker.log_artifact(tmp_path / "missing-2.pt")
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "log_artifact failed" in messages[0]
        assert "training continues" in messages[0]
        tracker.log_metrics({"loss": 0.5}, step=1)  # other kinds of logging still work
    assert _client(store).get_run(tracker.run_id).data.metrics["loss"] == 0.5


def test_log_model_is_named_after_the_model(store):
    import mlflow

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 5 * 2, 7))
    example = np.random.default_rng(0).standard_normal((1, 3, 4, 5, 2)).astype(np.float32)
    with (
        warnings.catch_warnings(record=True) as caught,
        _open(store, "skelact/test-model", tags={"model": "hcn"}) as tracker,
    ):
        warnings.simplefilter("always")
        model.train()
        started = time.perf_counter()
        tracker.log_model(model, example)
        seconds = time.perf_counter() - started
        assert model.training  # the caller's module is untouched
    assert not [w for w in caught if "failed for run" in str(w.message)]
    logged = mlflow.search_logged_models(
        experiment_ids=[tracker.experiment_id], output_format="list"
    )
    assert len(logged) == 1 and logged[0].source_run_id == tracker.run_id
    assert logged[0].name == "skelact-hcn"
    loaded = mlflow.pytorch.load_model(logged[0].model_uri)
    expected = model.eval()(torch.from_numpy(example))
    torch.testing.assert_close(loaded(torch.from_numpy(example)), expected)
    assert seconds < 30, f"log_model took {seconds:.1f} s"


def test_training_data_is_logged_as_a_dataset(store, tmp_path):
    data = tmp_path / "ntu60_3danno.pkl"
    data.write_bytes(b"x")
    with _open(store, "skelact/test-data") as tracker:
        tracker.log_input_dataset(str(data), "0123456789abcdef" * 4, "xsub_train", 40)
        tracker.log_input_dataset(str(data), "0123456789abcdef", "xsub_val", 16, "validation")
    inputs = _client(store).get_run(tracker.run_id).inputs.dataset_inputs
    found = {d.dataset.name: d for d in inputs}
    assert set(found) == {"ntu60_3danno:xsub_train", "ntu60_3danno:xsub_val"}
    train = found["ntu60_3danno:xsub_train"]
    assert train.dataset.digest == ("0123456789abcdef" * 4)[:36]  # MLflow's column width
    assert json.loads(train.dataset.source) == {"uri": data.resolve().as_uri()}
    assert json.loads(train.dataset.profile) == {"num_samples": 40, "split": "xsub_train"}
    contexts = {d.dataset.name: {t.key: t.value for t in d.tags}["mlflow.data.context"]
                for d in inputs}  # fmt: skip
    assert contexts == {"ntu60_3danno:xsub_train": "training",
                        "ntu60_3danno:xsub_val": "validation"}  # fmt: skip


def test_evaluation_keeps_the_training_runs_status_and_duration(store, monkeypatch):
    monkeypatch.setenv("DVC_STAGE", "train@hcn-xsub-0")
    with _open(store, "skelact/test-eval") as train:
        train.log_metrics({"loss": 1.0}, step=1)
    client = _client(store)
    before = client.get_run(train.run_id).info
    time.sleep(0.05)  # a re-terminated run would get a later end time
    monkeypatch.setenv("DVC_STAGE", "evaluate@hcn-xsub-0")
    with open_eval_run(
        enabled=True, experiment="never-created", run_id=train.run_id, tracking_uri=store
    ) as same:
        assert same.run_id == train.run_id
        assert client.get_run(train.run_id).info.status == "FINISHED"  # never reopened
        same.log_metrics({"eval_top1": 0.75})
    with open_eval_run(
        enabled=True,
        experiment="skelact/test-eval",
        run_id=train.run_id,
        child=True,
        run_name="test-on-val",
        tracking_uri=store,
    ) as child:
        assert child.run_id != train.run_id
        child.log_metrics({"eval_top1": 0.5})
    after = client.get_run(train.run_id)
    assert (after.info.status, after.info.start_time, after.info.end_time) == (
        "FINISHED", before.start_time, before.end_time)  # fmt: skip
    assert after.data.metrics == {"loss": 1.0, "eval_top1": 0.75}
    assert after.data.tags["dvc.stage"] == "train@hcn-xsub-0"  # the run's own facts stay
    assert after.data.tags["eval.dvc.stage"] == "evaluate@hcn-xsub-0"
    # Evaluating into an existing run creates no experiment of its own.
    assert client.get_experiment_by_name("never-created") is None
    child_run = client.get_run(child.run_id)
    assert child_run.data.tags["mlflow.parentRunId"] == train.run_id
    assert child_run.data.metrics == {"eval_top1": 0.5}
    assert child_run.info.status == "FINISHED"


def test_system_metrics_are_logged(store):
    import mlflow

    mlflow.set_system_metrics_sampling_interval(0.2)
    mlflow.set_system_metrics_samples_before_logging(1)
    try:
        with open_run(enabled=True, experiment="skelact/test-sys", tracking_uri=store,
                      system_metrics=True) as tracker:  # fmt: skip
            time.sleep(1.5)
    finally:
        mlflow.set_system_metrics_sampling_interval(None)
        mlflow.set_system_metrics_samples_before_logging(None)
    metrics = _client(store).get_run(tracker.run_id).data.metrics
    assert any(k.startswith("system/cpu_utilization") for k in metrics), sorted(metrics)


def test_wrong_uris_are_one_line_errors_before_training(tmp_path):
    not_db = tmp_path / "notes.db"
    not_db.write_text("this is not a database")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for uri in ("foo://server", "sqlite://mlflow.db", "http://127.0.0.1:9", f"sqlite:///{not_db}",
                f"sqlite:///{tmp_path}", f"sqlite:///{blocker}/sub/mlflow.db"):  # fmt: skip
        started = time.perf_counter()
        with pytest.raises(TrackingError) as caught:
            open_run(enabled=True, experiment="x", tracking_uri=uri)
        message = str(caught.value)
        assert isinstance(caught.value, SkelactError)
        assert repr(uri) in message and "\n" not in message and len(message) < 500, message
        # MLflow alone retries an unopenable database for ~100 s
        assert time.perf_counter() - started < 10, uri


def test_local_stores_are_written_synchronously(store):
    """A file store is written in place (MLflow's queue thread would cost ~1 s per stage to
    join); a server keeps the queue, so its latency stays off the training loop."""
    for uri in ("sqlite:///a.db", "file:///tmp/mlruns", "./mlruns", "C:\\runs"):
        assert is_local_store(uri), uri
    for uri in ("http://host:5000", "https://host", "databricks", "databricks://profile",
                "postgresql://user@host/db"):  # fmt: skip
        assert not is_local_store(uri), uri
    with _open(store, "skelact/test-sync") as tracker:
        tracker.log_metrics({"loss": 1.0}, step=1)
        assert tracker._pending == []  # nothing queued: the batch is already in the database
    assert _client(store).get_run(tracker.run_id).data.metrics == {"loss": 1.0}


def test_each_run_goes_to_the_store_it_names(tmp_path):
    """Opening a run must not redirect later runs of the process (MLflow's set_tracking_uri
    exports MLFLOW_TRACKING_URI, which outranks a configured URI)."""
    first, second = (f"sqlite:///{tmp_path / name}" for name in ("first.db", "second.db"))
    with open_run(enabled=True, experiment="skelact/a", tracking_uri=first,
                  system_metrics=False) as one:  # fmt: skip
        pass
    assert "MLFLOW_TRACKING_URI" not in os.environ
    with open_run(enabled=True, experiment="skelact/b", tracking_uri=second,
                  system_metrics=False) as two:  # fmt: skip
        assert two.tracking_uri == second
    assert _client(first).get_run(one.run_id).info.status == "FINISHED"
    assert _client(second).get_run(two.run_id).info.status == "FINISHED"


def test_uri_resolution_order(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    # A params.yaml naming a URI is the caller's business: it is never read behind its back.
    (tmp_path / "params.yaml").write_text("tracking:\n  uri: sqlite:////elsewhere/mlflow.db\n")
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert project_root() == tmp_path
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    assert resolve_tracking_uri("http://server:5000") == "http://server:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////env/mlflow.db")
    assert resolve_tracking_uri("http://server:5000") == "sqlite:////env/mlflow.db"
    # Queued DVC experiments run in a temporary copy; DVC_ROOT names the real project.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("DVC_ROOT", os.fspath(tmp_path / "a"))
    assert default_tracking_uri() == f"sqlite:///{(tmp_path / 'a').as_posix()}/mlflow.db"


def test_quiet_keeps_mlflows_info_lines_off_the_terminal(tmp_path, capfd):
    """A fresh database (schema migrations) with system metrics on: no INFO line on stderr."""
    import logging

    import mlflow  # noqa: F401  (importing it sets up its loggers)

    probe = logging.getLogger("mlflow.probe")
    saved = {name: logging.getLogger(name).level for name in ("mlflow", "alembic")}
    try:
        probe.info("probe-before")
        uri = f"sqlite:///{tmp_path / 'fresh.db'}"
        with open_run(enabled=True, experiment="q", tracking_uri=uri, quiet=True) as tracker:
            tracker.log_metrics({"loss": 1.0}, step=1)
        probe.info("probe-after")
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    err = capfd.readouterr().err
    assert "probe-before" in err  # MLflow's INFO lines do reach stderr by default
    during = err.split("probe-before", 1)[1].split("probe-after", 1)[0]
    assert "INFO" not in during.replace("INFO mlflow.probe:", ""), err
    assert "probe-after" in err  # the levels are restored when the run ends: nothing leaks
    assert _client(uri).get_run(tracker.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("local", [True, False], ids=["synchronous", "asynchronous"])
def test_a_store_failing_mid_run_never_fails_the_stage(store, tmp_path, monkeypatch, local):
    """The database becomes unusable after the start: every call returns, each kind warns once.

    A local store is written synchronously, so each failing call warns by name; a server's calls
    go through MLflow's queue (forced here on the SQLite file) and fail when waited for.
    """
    import skelact.tracking

    monkeypatch.setattr(skelact.tracking, "is_local_store", lambda uri: local)
    db = tmp_path / "flaky.db"
    shutil.copy(store[len("sqlite:///") :], db)  # a ready schema: no migrations to wait for
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_run(enabled=True, experiment="skelact/test-flaky", system_metrics=False,
                      tracking_uri=f"sqlite:///{db}") as tracker:  # fmt: skip
            tracker.log_metrics({"loss": 1.0}, step=1)
            tracker.flush()
            started = time.perf_counter()
            (tmp_path / "garbage").write_bytes(b"not a database" * 100)
            os.replace(tmp_path / "garbage", db)
            for step in range(2, 5):
                tracker.log_metrics({"loss": 1.0}, step=step)
            tracker.set_tags({"a": "b"})
    failures = [str(w.message) for w in caught if "training continues" in str(w.message)]
    kinds = ["log_metrics", "set_tags", "finish"] if local else ["flush", "finish"]
    assert [f.split(" failed")[0].removeprefix("MLflow ") for f in failures] == kinds, failures
    assert time.perf_counter() - started < 20
