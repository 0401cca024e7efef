"""Experiment tracking with MLflow's client API, behind a tracker that cannot break a run.

This is the one module that imports MLflow (slow to import; a disabled tracker never does). It
keeps two promises: a *wrong* tracking URI is a one-line :class:`TrackingError` before training
starts, and a store that is merely slow or flaky later never fails a stage (each kind of call that
fails warns once; for a server, metrics, params and tags go through MLflow's asynchronous queue).

Every call names its run id (``MlflowClient``): evaluation adds to a training run that has
already ended, and must neither reopen nor re-terminate it, so the run's status and duration stay
the training's. A resumed training continues its run (the engine keeps ``run_id`` in its
checkpoints); a crash marks the run FAILED, an interruption KILLED.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from skelact.errors import InterruptedRun, SkelactError

__all__ = ["TrackingError", "Tracker", "NullTracker", "open_run", "open_eval_run",
           "check_tracking_uri", "resolve_tracking_uri", "default_tracking_uri", "project_root",
           "default_tags", "flatten_params", "is_local_store"]  # fmt: skip

PathLike = str | os.PathLike[str]
_MARKERS = ("dvc.yaml", ".dvc", ".git")  # what makes a folder the project root
_MAX_PARAM_LEN = 6000  # MLflow refuses longer parameter values
_MAX_DIGEST_LEN = 36  # the width of MLflow's dataset digest column
_PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


class TrackingError(SkelactError):
    """The tracking store cannot be used at all (raised at start, never during training)."""


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


# -- where runs go -----------------------------------------------------------------------------


def project_root() -> Path:
    """``DVC_ROOT`` (DVC sets it, also for queued experiments running in a throw-away copy), else
    the nearest folder upward from cwd holding ``dvc.yaml``, ``.dvc`` or ``.git``, else cwd."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    marked = (d for d in (here, *here.parents) if any((d / m).exists() for m in _MARKERS))
    return next(marked, here)


def default_tracking_uri() -> str:
    """``sqlite:///<project root>/mlflow.db``: an embedded real database, nothing to run."""
    return "sqlite:///" + (project_root() / "mlflow.db").as_posix()


def resolve_tracking_uri(configured: str | None = None) -> str:
    """Env ``MLFLOW_TRACKING_URI``, else ``configured`` (the caller's setting), else the default.

    The environment wins so that CI, a cluster job or a teammate can redirect any run without
    editing the versioned ``params.yaml`` (which would invalidate DVC's cache).
    """
    for uri in (os.environ.get("MLFLOW_TRACKING_URI"), configured):
        if uri and str(uri).strip():
            return str(uri).strip()
    return default_tracking_uri()


@contextlib.contextmanager
def _fail_fast() -> Iterator[None]:
    """No HTTP retries, a short timeout and one database connection attempt (MLflow alone
    retries an unopenable SQLite file for about 100 s)."""
    from mlflow.store.db import utils as db_utils

    saved_env, saved_retries = {k: os.environ.get(k) for k in _PROBE_ENV}, db_utils.MAX_RETRY_COUNT
    os.environ.update(_PROBE_ENV)
    db_utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        db_utils.MAX_RETRY_COUNT = saved_retries
        for key, value in saved_env.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def check_tracking_uri(uri: str) -> str:
    """Open the store and list one experiment, or raise a one-line :class:`TrackingError`."""
    from mlflow import MlflowClient

    try:
        with _fail_fast():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:
        raise TrackingError(f"tracking URI {uri!r} is not usable: {_one_line(exc)}") from exc
    return uri


# -- what a run records ------------------------------------------------------------------------


def is_local_store(uri: str) -> bool:
    """Whether ``uri`` is a store in a local file (SQLite, a folder), not a server.

    Why it matters: MLflow's asynchronous queue keeps a server's latency off the training loop,
    but its worker thread polls once a second, and ending a run (or the process) joins it: about
    1 s per stage. A local store takes a batch in milliseconds, so it is written synchronously.
    """
    if "://" not in uri:  # a plain path, as MLflow reads it, or the "databricks" profile
        return not uri.lower().startswith("databricks")
    return uri.partition(":")[0].lower() in ("sqlite", "file")


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """One rule for every dict: its leaves become dotted keys, e.g. ``decay_mult.backbone.fc7``
    = ``10.0``; an empty dict has no leaves and logs nothing. Values are ``str()``-ed."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{prefix}{key}."))
        else:
            text = str(value)
            cut = len(text) > _MAX_PARAM_LEN
            flat[f"{prefix}{key}"] = text[: _MAX_PARAM_LEN - 14] + "...[truncated]" if cut else text
    return flat


def default_tags() -> dict[str, str]:
    """Tags of every run: user and source (MLflow's names for the UI's columns), code version,
    DVC stage, SLURM job, torch.

    Set here rather than by MLflow's ``resolve_tags``, whose notebook and Databricks probes cost
    about 0.3 s per stage (it imports IPython) and add nothing to a command-line run.
    """
    import getpass

    from skelact import __version__

    tags = {
        "skelact.version": __version__,
        "python.version": sys.version.split()[0],
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": sys.argv[0] or "python",
    }
    with contextlib.suppress(Exception):  # no user name in some containers
        tags["mlflow.user"] = getpass.getuser()
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)  # fmt: skip
        if git.returncode == 0:
            tags["git.commit"] = tags["mlflow.source.git.commit"] = git.stdout.strip()
    env = os.environ
    tags.update(
        {
            tag: env[var]
            for var, tag in (("DVC_STAGE", "dvc.stage"), ("DVC_EXP_NAME", "dvc.exp_name"))
            if env.get(var)
        }
    )
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        tags["slurm_job_id"] = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    elif env.get("SLURM_JOB_ID"):
        tags["slurm_job_id"] = env["SLURM_JOB_ID"]
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
        if exc_type is None:
            self.finish("FINISHED")
        else:
            killed = issubclass(exc_type, KeyboardInterrupt | InterruptedRun)
            self.finish("KILLED" if killed else "FAILED")

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


class Tracker(NullTracker):
    """One MLflow run, written through ``MlflowClient`` with its id. ``owns_run``: this process
    started or resumed the run and ends it in :meth:`finish`; otherwise (evaluation adding to a
    training run) the run's status and end time are left as they are."""

    enabled = True

    def __init__(self, client: Any, run: Any, *, owns_run: bool, system_metrics: bool) -> None:
        self._client, self._owns_run, self._finished = client, owns_run, False
        self.run_id, self.experiment_id = run.info.run_id, run.info.experiment_id
        self.tracking_uri = client.tracking_uri
        self._model = run.data.tags.get("model", "model")
        self._synchronous = is_local_store(self.tracking_uri)
        self._pending: list[Any] = []  # asynchronous operations not yet waited for
        self._warned: set[str] = set()
        self._monitor = None
        if system_metrics and owns_run:
            with self._guard("system_metrics"):  # needs psutil, which MLflow does not require
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                self._monitor = SystemMetricsMonitor(
                    self.run_id, tracking_uri=self.tracking_uri, resume_logging=True
                )  # new run: step 0
                self._monitor.start()

    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # a tracking problem must never stop training
            if what not in self._warned:
                self._warned.add(what)
                warnings.warn(f"MLflow {what} failed for run {self.run_id} at "
                              f"{self.tracking_uri}: {_one_line(exc)} (training continues; "
                              f"further {what} failures are not reported)", RuntimeWarning,
                              stacklevel=3)  # fmt: skip

    def _batch(self, what: str, **entities: Any) -> None:
        with self._guard(what):
            operation = self._client.log_batch(self.run_id, **entities,
                                               synchronous=self._synchronous)  # fmt: skip
            if operation is not None:  # None: already written (synchronous)
                self._pending.append(operation)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params. They are immutable in MLflow: logging the same value again (a
        resumed run) is accepted, a different one is refused (warned about; the first stays)."""
        from mlflow.entities import Param

        self._batch("log_params", params=[Param(k, v) for k, v in flatten_params(params).items()])

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log the numbers among ``metrics`` (None, bools and others are skipped)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if values := [Metric(k, float(v), now, step or 0) for k, v in metrics.items()
                      if isinstance(v, int | float) and not isinstance(v, bool)]:  # fmt: skip
            self._batch("log_metrics", metrics=values)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        if clean := [RunTag(str(k), str(v)) for k, v in tags.items() if v is not None]:
            self._batch("set_tags", tags=clean)

    def log_artifact(self, path: PathLike, artifact_path: str | None = None) -> None:
        with self._guard("log_artifact"):
            if not Path(path).is_file():
                raise FileNotFoundError(f"no such file: {path}")
            self._client.log_artifact(self.run_id, os.fspath(path), artifact_path)

    def log_artifacts(self, folder: PathLike, artifact_path: str | None = None) -> None:
        with self._guard("log_artifact"):
            self._client.log_artifacts(self.run_id, os.fspath(folder), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        with self._guard("log_artifact"):
            self._client.log_dict(self.run_id, dict(data), artifact_file)

    def log_input_dataset(self, path: str, digest: str, split: str, num_samples: int,
                          context: str = "training") -> None:  # fmt: skip
        """Record a data file as an input of the run (the UI's Dataset column), named
        ``<file stem>:<split>``, with its sample count; ``context``: training, validation..."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        source = Path(path).resolve()
        dataset = Dataset(
            name=f"{source.stem}:{split}",
            digest=str(digest)[:_MAX_DIGEST_LEN],
            source_type="local",
            source=json.dumps({"uri": source.as_uri()}),
            profile=json.dumps({"num_samples": int(num_samples), "split": split}),
        )
        with self._guard("log_input"):
            self._client.log_inputs(
                self.run_id, [DatasetInput(dataset, [InputTag(MLFLOW_DATASET_CONTEXT, context)])]
            )

    def log_model(self, model: Any, input_example: Any, name: str | None = None) -> None:
        """Log a CPU copy of ``model`` named ``name`` (default ``skelact-<model tag>``) with an
        input example. Kept fast: the pip requirements are given (inferring them imports the
        model in a subprocess) and the serving-input check (reload and predict) is skipped."""
        import copy

        import numpy as np

        with self._guard("log_model"):
            import mlflow.pytorch
            import torch

            from skelact import __version__

            # Made here: log_model would file it under the process's active (default) experiment.
            logged = self._client.create_logged_model(
                self.experiment_id, name=name or f"skelact-{self._model}", source_run_id=self.run_id
            )
            with warnings.catch_warnings():  # torch.export's note about GPU weight grouping
                warnings.filterwarnings("ignore", message="No complete tensor found")
                mlflow.pytorch.log_model(
                    copy.deepcopy(model).cpu().eval(),
                    model_id=logged.model_id,
                    run_id=self.run_id,
                    input_example=np.asarray(input_example, dtype=np.float32),
                    pip_requirements=[
                        f"torch=={torch.__version__.split('+')[0]}",
                        f"skelact=={__version__}",
                    ],
                    validate_serving_input=False,
                )

    def flush(self) -> None:
        """Wait for the asynchronous queue (failures warn, never raise)."""
        pending, self._pending = self._pending, []
        with self._guard("flush"):
            for operation in pending:
                operation.wait()

    def finish(self, status: str = "FINISHED") -> None:
        """Stop the system-metrics sampler, flush and end an owned run with ``status``."""
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
        _restore_levels(getattr(self._client, "skelact_log_levels", {}))


# -- opening runs ------------------------------------------------------------------------------


_QUIET_LOGGERS = ("mlflow", "alembic")


def _connect(tracking_uri: str | None, quiet: bool) -> Any:
    """A client for the checked URI, which also becomes the process's (``log_model`` uses it).

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment, which
    :func:`resolve_tracking_uri` ranks first: left there, it would send every later run of this
    process to this run's store whatever URI that run names. The variable is put back as it was.

    ``quiet``: MLflow's INFO lines (store migrations, system metrics) are not the user's news;
    their loggers are raised to WARNING until the tracker finishes (the levels before are kept
    on the client as ``skelact_log_levels`` and restored then, so nothing leaks to later runs).
    """
    import mlflow  # imported before the loggers are quietened: importing configures them

    levels = {name: logging.getLogger(name).level for name in _QUIET_LOGGERS} if quiet else {}
    for name in levels:
        logging.getLogger(name).setLevel(logging.WARNING)
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        mlflow.set_tracking_uri(check_tracking_uri(resolve_tracking_uri(tracking_uri)))
    except BaseException:
        _restore_levels(levels)
        raise
    finally:
        if env_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_uri
    client = mlflow.MlflowClient()
    client.skelact_log_levels = levels
    return client


def _restore_levels(levels: Mapping[str, int]) -> None:
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _experiment_id(client: Any, name: str) -> str:
    """Get or create the experiment. With a SQLite store its artifacts sit beside the database:
    MLflow's default, ``./mlruns`` of cwd, is lost when cwd is a queued DVC experiment's copy."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if client.tracking_uri.startswith("sqlite:///"):
            db = Path(client.tracking_uri.removeprefix("sqlite:///").split("?")[0])
            location = (db.resolve().parent / "mlruns").as_uri()
        with contextlib.suppress(Exception):  # a parallel DVC queue worker may win the race
            return client.create_experiment(name, artifact_location=location)
        experiment = client.get_experiment_by_name(name)
    elif experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _existing_run(client: Any, run_id: str | None) -> Any:
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:
        warnings.warn(f"MLflow run {run_id} not found at {client.tracking_uri}; starting a new "
                      f"run instead", RuntimeWarning, stacklevel=3)  # fmt: skip
        return None


def _tags(tags: Mapping[str, Any] | None, run: Any = None, prefix: str = "") -> dict[str, str]:
    """This process's tags; for a reopened ``run``, its own facts (DVC stage, git commit...) stay
    and the differing ones are added under ``prefix`` (``resume.`` or ``eval.``)."""
    mine = {**default_tags(), **{str(k): str(v) for k, v in (tags or {}).items() if v is not None}}
    if run is None:
        return mine
    own = run.data.tags
    out = {(f"{prefix}{k}" if k in own else k): v for k, v in mine.items() if own.get(k) != v}
    return {**out, f"{prefix}at": time.strftime("%Y-%m-%dT%H:%M:%S")}


def open_run(*, enabled: bool, experiment: str, run_name: str | None = None,
             tracking_uri: str | None = None, run_id: str | None = None,
             tags: Mapping[str, Any] | None = None, parent_run_id: str | None = None,
             system_metrics: bool | None = None, quiet: bool = False) -> NullTracker:  # fmt: skip
    """Start a run, or resume ``run_id`` (same id, back to RUNNING), and return its tracker.

    ``enabled=False`` gives a :class:`NullTracker` without importing MLflow. A wrong URI raises
    :class:`TrackingError` before any training work; a ``run_id`` unknown to the store starts a
    new run tagged ``skelact.resumed_from``. ``parent_run_id`` nests the new run. System metrics
    (CPU, memory, GPU) are sampled unless ``system_metrics`` is False. ``quiet`` keeps MLflow's
    INFO lines off the terminal.
    """
    if not enabled:
        return NullTracker()
    client = _connect(tracking_uri, quiet)
    try:
        if run := _existing_run(client, run_id):
            client.update_run(run.info.run_id, status="RUNNING")
            later = {**_tags(tags, run, "resume."), "skelact.resumed": "true"}
        else:
            links = {"skelact.resumed_from": run_id, "mlflow.parentRunId": parent_run_id}
            run = client.create_run(_experiment_id(client, experiment), run_name=run_name,
                                    tags=_tags({**(tags or {}), **links}))  # fmt: skip
            later = {}
    except Exception as exc:
        raise TrackingError(f"could not start an MLflow run in experiment {experiment!r} at "
                            f"{client.tracking_uri}: {_one_line(exc)}") from exc  # fmt: skip
    tracker = Tracker(client, run, owns_run=True, system_metrics=system_metrics is not False)
    tracker.set_tags(later)
    return tracker


def open_eval_run(*, enabled: bool, experiment: str, run_id: str | None, child: bool = False,
                  run_name: str | None = None, tracking_uri: str | None = None,
                  tags: Mapping[str, Any] | None = None,
                  quiet: bool = False) -> NullTracker:  # fmt: skip
    """Tracker for evaluating a checkpoint: by default the training run ``run_id`` itself (one row
    of ``mlflow ui`` holds curves, test metrics and confusion matrix; its status and duration are
    not touched); ``child=True``: a new run nested under it (one checkpoint, several data sets);
    without a known ``run_id``: a stand-alone run in ``experiment``. No system metrics."""
    if not enabled:
        return NullTracker()
    if run_id and not child:
        client = _connect(tracking_uri, quiet)
        if run := _existing_run(client, run_id):
            tracker = Tracker(client, run, owns_run=False, system_metrics=False)
            tracker.set_tags(_tags(tags, run, "eval."))
            return tracker
    return open_run(enabled=True, experiment=experiment, run_name=run_name,
                    tracking_uri=tracking_uri, tags=tags, system_metrics=False, quiet=quiet,
                    parent_run_id=run_id if child else None)  # fmt: skip
