"""Experiment tracking with MLflow's client API, behind a tracker that cannot break a run.

Why a wrapper instead of calling ``mlflow`` from the engine: this is the one module that imports
MLflow (slow to import; a disabled tracker never does), and it keeps two promises. A *wrong*
tracking URI is a one-line :class:`TrackingError` before any training starts; a server that is
merely slow or flaky later never fails a stage: metrics and params go through MLflow's
asynchronous queue, and each kind of logging call that fails warns once and is then ignored.

Every call names its run id explicitly (``MlflowClient``), because evaluation adds to a training
run that has already ended: it must not reopen or re-terminate it, so the run's status and
duration stay the training's. A resumed training continues the same run (the engine keeps
``run_id`` in its checkpoints); a crash marks the run FAILED.

Usage::

    with open_run(enabled=True, experiment="skelact/ntu60-xsub", run_name="hcn-xsub-seed0",
                  tags={"model": "hcn"}) as tracker:
        tracker.log_params(config_dict)
        tracker.log_metrics({"loss": loss}, step=epoch)
        tracker.log_model(model, input_example)
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from skelact.errors import SkelactError

__all__ = ["TrackingError", "Tracker", "NullTracker", "open_run", "open_eval_run",
           "check_tracking_uri", "resolve_tracking_uri", "default_tracking_uri", "project_root",
           "default_tags", "flatten_params"]  # fmt: skip

ENV_URI = "MLFLOW_TRACKING_URI"
PathLike = str | os.PathLike[str]
_MAX_PARAM_LEN = 6000  # MLflow rejects longer parameter values
_MAX_DIGEST_LEN = 36  # the width of MLflow's dataset digest column
# At start-up, fail in seconds rather than after MLflow's minutes of retries.
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


class TrackingError(SkelactError):
    """The tracking back end cannot be used at all (raised at start, never during training)."""


def _one_line(exc: BaseException, limit: int = 300) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:limit]


# -- where runs go -----------------------------------------------------------------------------


def project_root() -> Path:
    """The folder for ``mlflow.db``: ``DVC_ROOT`` (DVC sets it, also for queued experiments that
    run in a throw-away copy), else the nearest folder upward from cwd holding ``dvc.yaml``,
    ``.dvc`` or ``.git``, else cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    markers = ("dvc.yaml", ".dvc", ".git")
    return next((d for d in (here, *here.parents) if any((d / m).exists() for m in markers)), here)


def default_tracking_uri() -> str:
    """``sqlite:///<project root>/mlflow.db``: an embedded real database, nothing to run."""
    return "sqlite:///" + (project_root() / "mlflow.db").as_posix()


def resolve_tracking_uri(configured: str | None = None) -> str:
    """Env ``MLFLOW_TRACKING_URI``, else ``configured`` (the caller's setting), else the default.

    The environment wins so that CI, a cluster job or a teammate can redirect any run without
    editing the versioned ``params.yaml`` (which would invalidate DVC's cache).
    """
    for uri in (os.environ.get(ENV_URI), configured):
        if uri and str(uri).strip():
            return str(uri).strip()
    return default_tracking_uri()


@contextlib.contextmanager
def _probe_settings() -> Iterator[None]:
    """No HTTP retries, short timeouts and a single database connection attempt while probing."""
    from mlflow.store.db import utils as db_utils

    saved_env = {key: os.environ.get(key) for key in _PROBE_ENV}
    saved_retries = db_utils.MAX_RETRY_COUNT  # MLflow retries a failing database for ~100 s
    os.environ.update(_PROBE_ENV)
    db_utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        db_utils.MAX_RETRY_COUNT = saved_retries
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def check_tracking_uri(uri: str) -> str:
    """Open the store once and list one experiment, or raise a one-line :class:`TrackingError`."""
    from mlflow import MlflowClient

    try:
        with _probe_settings():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"tracking URI {uri!r} is not usable: {_one_line(exc)}") from exc
    return uri


# -- what a run records ------------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """MLflow params are flat strings; one rule for every dict: its leaves become dotted keys.

    ``{"decay_mult": {"backbone.fc7": 10.0}}`` -> ``{"decay_mult.backbone.fc7": "10.0"}``; an empty
    dict has no leaves and logs nothing. Other values are ``str()``-ed (cut to MLflow's limit).
    """
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{prefix}{key}."))
            continue
        text = str(value)
        if len(text) > _MAX_PARAM_LEN:
            text = text[: _MAX_PARAM_LEN - 14] + "...[truncated]"
        flat[f"{prefix}{key}"] = text
    return flat


def _git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def default_tags() -> dict[str, str]:
    """Tags of every run: code version, DVC stage, SLURM job, library versions."""
    from mlflow.tracking.context.registry import resolve_tags

    from skelact import __version__

    tags = resolve_tags({"skelact.version": __version__, "python.version": sys.version.split()[0]})
    if commit := _git_commit():
        tags.update({"git.commit": commit, "mlflow.source.git.commit": commit})
    for env, tag in (("DVC_STAGE", "dvc.stage"), ("DVC_EXP_NAME", "dvc.exp_name")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    slurm = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")
    if slurm:
        tags["slurm_job_id"] = slurm
    if "torch" in sys.modules:
        tags["torch.version"] = str(sys.modules["torch"].__version__)
    return tags


# -- trackers ----------------------------------------------------------------------------------


class NullTracker:
    """Tracking switched off: every call is accepted and does nothing (``run_id`` is None)."""

    enabled = False
    run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish("FINISHED" if exc_type is None else _status_of(exc_type))

    def log_params(self, params: Mapping[str, Any]) -> None: ...
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None: ...
    def set_tags(self, tags: Mapping[str, Any]) -> None: ...
    def log_artifact(self, path: PathLike, artifact_path: str | None = None) -> None: ...
    def log_artifacts(self, folder: PathLike, artifact_path: str | None = None) -> None: ...
    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None: ...
    def log_input_dataset(self, path: str, digest: str, split: str, num_samples: int,
                          context: str = "training") -> None: ...  # fmt: skip
    def log_model(self, model: Any, input_example: Any, name: str | None = None) -> None: ...
    def flush(self) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...


def _status_of(exc_type: type[BaseException]) -> str:
    from skelact.errors import InterruptedRun

    return "KILLED" if issubclass(exc_type, KeyboardInterrupt | InterruptedRun) else "FAILED"


class Tracker(NullTracker):
    """One MLflow run, written through ``MlflowClient`` with its run id.

    ``owns_run``: this process started (or resumed) the run and ends it on :meth:`finish` (as a
    context manager: FINISHED, FAILED on an exception, KILLED on an interrupt). Otherwise (an
    evaluation adding to a training run) the run's status and end time are left untouched.
    """

    enabled = True

    def __init__(self, client: Any, run: Any, *, owns_run: bool, system_metrics: bool) -> None:
        self._client = client
        self.run_id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self.tracking_uri: str = client.tracking_uri
        self._model_tag = run.data.tags.get("model")
        self._owns_run = owns_run
        self._finished = False
        self._pending: list[Any] = []  # asynchronous operations not yet flushed
        self._warned: set[str] = set()
        self._monitor = None
        if system_metrics and owns_run:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            with self._guard("system_metrics"):
                self._monitor = SystemMetricsMonitor(
                    self.run_id, resume_logging=bool(run.data.metrics),
                    tracking_uri=self.tracking_uri,
                )  # fmt: skip
                self._monitor.start()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # a tracking problem must never stop training
            if what not in self._warned:
                self._warned.add(what)
                warnings.warn(
                    f"MLflow {what} failed for run {self.run_id} at {self.tracking_uri}: "
                    f"{_one_line(exc)} (training continues; further {what} failures are not "
                    f"reported)", RuntimeWarning, stacklevel=3,
                )  # fmt: skip

    @property
    def warnings_seen(self) -> set[str]:
        """Which kinds of logging calls have failed at least once."""
        return set(self._warned)

    def _batch(self, what: str, **entities: Any) -> None:
        with self._guard(what):
            self._pending.append(self._client.log_batch(self.run_id, **entities, synchronous=False))

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params; on a resumed run, changed values keep the first (MLflow params are
        immutable) and the difference is tagged ``param_changed.<key>`` and warned about."""
        from mlflow.entities import Param

        flat = flatten_params(params)
        with self._guard("log_params"):
            logged = self._client.get_run(self.run_id).data.params
            changed = {k: f"{logged[k]} -> {v}" for k, v in flat.items() if logged.get(k, v) != v}
            if changed:
                self.set_tags({f"param_changed.{k}": v[:5000] for k, v in changed.items()})
                warnings.warn(f"run {self.run_id}: parameters differ from the logged ones and "
                              f"were not overwritten: {sorted(changed)}", RuntimeWarning,
                              stacklevel=2)  # fmt: skip
            new = [Param(k, v) for k, v in flat.items() if k not in logged]
            if new:
                self._batch("log_params", params=new)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numbers asynchronously (None, bools and non-numbers are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()
                  if isinstance(v, int | float) and not isinstance(v, bool)]  # fmt: skip
        if values:
            self._batch("log_metrics", metrics=values)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values stringified, None skipped)."""
        from mlflow.entities import RunTag

        clean = [RunTag(str(k), str(v)) for k, v in tags.items() if v is not None]
        if clean:
            self._batch("set_tags", tags=clean)

    def log_artifact(self, path: PathLike, artifact_path: str | None = None) -> None:
        """Copy one file into the run's artifacts (a missing file warns, never raises)."""
        with self._guard("log_artifact"):
            if not Path(path).is_file():
                raise FileNotFoundError(f"no such file: {path}")
            self._client.log_artifact(self.run_id, os.fspath(path), artifact_path)

    def log_artifacts(self, folder: PathLike, artifact_path: str | None = None) -> None:
        """Copy a folder's files into the run's artifacts."""
        with self._guard("log_artifact"):
            self._client.log_artifacts(self.run_id, os.fspath(folder), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Store a dict as a JSON/YAML artifact (by the file's extension)."""
        with self._guard("log_artifact"):
            self._client.log_dict(self.run_id, dict(data), artifact_file)

    def log_input_dataset(self, path: str, digest: str, split: str, num_samples: int,
                          context: str = "training") -> None:  # fmt: skip
        """Record a data file as the run's input (the UI's Dataset column): its name is
        ``<file stem>:<split>``, its profile the sample count, ``context`` e.g. training."""
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        source = Path(path).resolve()
        dataset = Dataset(name=f"{source.stem}:{split}", digest=str(digest)[:_MAX_DIGEST_LEN],
                          source_type="local", source=json.dumps({"uri": source.as_uri()}),
                          profile=json.dumps({"num_samples": int(num_samples), "split": split}))
        with self._guard("log_input"):  # fmt: skip
            self._client.log_inputs(self.run_id, [
                DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])])

    def log_model(self, model: Any, input_example: Any, name: str | None = None) -> None:
        """Log a PyTorch model (a CPU copy, eval mode) named ``name``, by default
        ``skelact-<model tag>``, with an input example (its signature is inferred).

        Kept fast: pip requirements are given (inferring them imports the model in a subprocess,
        tens of seconds) and the serving-input check (reload + predict) is skipped.
        """
        import copy

        import numpy as np

        with self._guard("log_model"):
            import mlflow.pytorch
            import torch

            from skelact import __version__

            # Created here, not by log_model: it would file the model under the process's
            # active experiment (the default one), not this run's.
            logged = self._client.create_logged_model(
                self.experiment_id, name=name or f"skelact-{self._model_tag or 'model'}",
                source_run_id=self.run_id)  # fmt: skip
            cpu = copy.deepcopy(model).cpu().eval()
            with warnings.catch_warnings():  # torch.export's note about GPU weight grouping
                warnings.filterwarnings("ignore", message="No complete tensor found")
                mlflow.pytorch.log_model(
                    cpu, model_id=logged.model_id, run_id=self.run_id,
                    input_example=np.asarray(input_example, dtype=np.float32),
                    pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                      f"skelact=={__version__}"],
                    validate_serving_input=False,
                )  # fmt: skip

    def flush(self) -> None:
        """Wait for the asynchronous queue (failures warn, never raise)."""
        pending, self._pending = self._pending, []
        with self._guard("flush"):
            for operation in pending:
                operation.wait()

    def finish(self, status: str = "FINISHED") -> None:
        """Flush, stop the system-metrics sampler and, for an owned run, end it with ``status``
        (FINISHED, FAILED or KILLED). Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._monitor is not None:
            with self._guard("system_metrics"):
                self._monitor.finish()
        self.flush()
        if self._owns_run:
            with self._guard("finish"):
                self._client.set_terminated(self.run_id, status=status)


# -- opening runs ------------------------------------------------------------------------------


def _connect(tracking_uri: str | None, quiet: bool) -> Any:
    """A checked client for the resolved URI (also the process default, for MLflow's helpers)."""
    import mlflow  # first: importing it configures its loggers

    if quiet:  # MLflow's INFO lines (store migrations, system metrics) are not the user's news
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
    uri = check_tracking_uri(resolve_tracking_uri(tracking_uri))
    mlflow.set_tracking_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri)


def _experiment_id(client: Any, name: str) -> str:
    """Get or create the experiment; with a SQLite store its artifacts sit beside the database
    (MLflow's default ``./mlruns`` of cwd is lost when cwd is a queued DVC experiment's copy)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if client.tracking_uri.startswith("sqlite:///"):
            db = Path(client.tracking_uri[len("sqlite:///"):].split("?")[0])
            location = (db.resolve().parent / "mlruns").as_uri()
        with contextlib.suppress(Exception):  # a parallel DVC queue worker may win the race
            return client.create_experiment(name, artifact_location=location)
        experiment = client.get_experiment_by_name(name)
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _str_tags(tags: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (tags or {}).items() if v is not None}


def _existing_run(client: Any, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:
        warnings.warn(f"MLflow run {run_id} not found at {client.tracking_uri}; starting a new "
                      f"run instead", RuntimeWarning, stacklevel=3)  # fmt: skip
        return None


def _reopen_tags(run: Any, tags: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The run's own facts (DVC stage, git commit...) stay; differing ones of this process are
    added under ``prefix`` (``resume.`` or ``eval.``)."""
    own = run.data.tags
    out = {k: v for k, v in tags.items() if k not in own}
    out.update({f"{prefix}{k}": v for k, v in tags.items() if k in own and own[k] != v})
    out[f"{prefix}at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return out


def open_run(*, enabled: bool, experiment: str, run_name: str | None = None,
             tracking_uri: str | None = None, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
             system_metrics: bool | None = None, quiet: bool = False) -> NullTracker:  # fmt: skip
    """Start a run, or resume ``run_id`` (same id, back to RUNNING), and return its tracker.

    ``enabled=False`` returns a :class:`NullTracker` without importing MLflow. The URI is checked
    first, so a wrong one raises :class:`TrackingError` before any training work. A ``run_id``
    unknown to this store starts a new run tagged ``skelact.resumed_from``. ``parent_run_id``
    nests the new run under another. System metrics (CPU, memory, GPU) are sampled unless
    ``system_metrics`` is False. ``quiet`` keeps MLflow's INFO lines off the terminal.
    """
    if not enabled:
        return NullTracker()
    client = _connect(tracking_uri, quiet)
    wanted = {**default_tags(), **_str_tags(tags)}
    try:
        run = _existing_run(client, run_id)
        if run is not None:
            client.update_run(run.info.run_id, status="RUNNING")
            extra = {**_reopen_tags(run, wanted, "resume."), "skelact.resumed": "true"}
        else:
            extra = {"skelact.resumed_from": run_id} if run_id else {}
            if parent_run_id:
                extra["mlflow.parentRunId"] = parent_run_id
            run = client.create_run(_experiment_id(client, experiment), run_name=run_name,
                                    tags={**wanted, **extra})  # fmt: skip
            extra = {}
    except Exception as exc:
        raise TrackingError(f"could not start an MLflow run in experiment {experiment!r} at "
                            f"{client.tracking_uri}: {_one_line(exc)}") from exc  # fmt: skip
    tracker = Tracker(client, run, owns_run=True, system_metrics=system_metrics is not False)
    tracker.set_tags(extra)
    return tracker


def open_eval_run(*, enabled: bool, experiment: str, run_id: str | None, child: bool = False,
                  run_name: str | None = None, tracking_uri: str | None = None,
                  tags: Mapping[str, Any] | None = None,
                  quiet: bool = False) -> NullTracker:  # fmt: skip
    """Tracker for evaluating a checkpoint.

    By default the metrics go into the training run itself (``run_id`` from the checkpoint), so
    one row of ``mlflow ui`` holds curves, test metrics and confusion matrix; that run's status
    and duration are not touched. ``child=True`` makes a new run nested under it (one checkpoint
    evaluated on several data sets). Without a known ``run_id`` (untracked training, foreign
    checkpoint) a stand-alone run is started in ``experiment``. No system metrics: it is short.
    """
    if not enabled:
        return NullTracker()
    if run_id and not child:
        client = _connect(tracking_uri, quiet)
        run = _existing_run(client, run_id)
        if run is not None:
            tracker = Tracker(client, run, owns_run=False, system_metrics=False)
            wanted = {**default_tags(), **_str_tags(tags)}
            tracker.set_tags(_reopen_tags(run, wanted, "eval."))
            return tracker
    return open_run(enabled=True, experiment=experiment, run_name=run_name,
                    tracking_uri=tracking_uri, tags=tags, system_metrics=False, quiet=quiet,
                    parent_run_id=run_id if child else None)  # fmt: skip
