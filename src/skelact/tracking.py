"""Experiment tracking with MLflow, behind a small interface that cannot break a training run.

Why a wrapper instead of calling ``mlflow`` directly from the engine:

* one module owns the MLflow import (it is slow to import and optional at run time: a disabled
  tracker never imports it);
* a *wrong* tracking URI (typo in the scheme, unwritable SQLite folder, server that does not answer)
  must be a clear error *before* hours of training start, whereas a backend that is merely slow or
  flaky later on must never make a stage fail: every logging call after the start is guarded, the
  first failure of each kind is reported once as a warning and training goes on;
* metrics and params are logged asynchronously (MLflow's async queue), so a slow server does not
  slow down the training loop;
* a resumed training continues the *same* MLflow run (the engine stores ``run_id`` in its
  checkpoints) and a crash marks the run FAILED instead of leaving it RUNNING forever;
* the default SQLite store and its artifact folder sit in the project root, also when DVC runs the
  stage inside a temporary experiment workspace (``dvc exp run --queue``), where the working
  directory is thrown away afterwards.

Usage::

    with open_run(enabled=True, experiment="skelact/ntu60-xsub", run_name="hcn-s0",
                  tags={"model": "hcn"}) as tracker:
        tracker.log_params(config_dict)
        for epoch in ...:
            tracker.log_metrics({"loss": loss}, step=epoch)
        tracker.log_artifact("runs/hcn/best.pt")
        tracker.log_model(model, input_example)
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "TrackingError",
    "Tracker",
    "NullTracker",
    "open_run",
    "open_eval_run",
    "check_tracking_uri",
    "resolve_tracking_uri",
    "default_tracking_uri",
    "project_root",
    "flatten_params",
]

_log = logging.getLogger(__name__)

ENV_URI = "MLFLOW_TRACKING_URI"
# Database back ends MLflow's SQLAlchemy store accepts (optionally with a "+driver" suffix).
_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_HTTP_SCHEMES = ("http", "https")
_OTHER_SCHEMES = ("file", "databricks", "databricks-uc", "uc")
# A parameter value longer than this is rejected by MLflow; longer values are truncated (and said).
_MAX_PARAM_LEN = 6000


class TrackingError(RuntimeError):
    """The tracking back end cannot be used at all (raised at start, never during training)."""


# --------------------------------------------------------------------------------------------
# URIs
# --------------------------------------------------------------------------------------------


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The folder that should hold ``mlflow.db``.

    ``DVC_ROOT`` wins: DVC sets it for every stage command and, for queued/temporary experiments,
    points it at the *original* repository rather than the throw-away workspace. Otherwise the
    nearest parent of ``start`` (default: cwd) that holds ``dvc.yaml``, ``params.yaml`` or ``.dvc``;
    otherwise ``start`` itself.
    """
    env_root = os.environ.get("DVC_ROOT")
    if env_root:
        return Path(env_root).resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if any((folder / marker).exists() for marker in ("dvc.yaml", "params.yaml", ".dvc")):
            return folder
    return here


def default_tracking_uri(root: str | os.PathLike[str] | None = None) -> str:
    """``sqlite:///<project root>/mlflow.db``: an embedded real database, nothing to run."""
    path = (Path(root) if root is not None else project_root()).resolve() / "mlflow.db"
    return "sqlite:///" + path.as_posix()


def resolve_tracking_uri(configured: str | None = None) -> str:
    """Pick the URI: env ``MLFLOW_TRACKING_URI``, else ``configured`` (CLI/config), else
    ``tracking.uri`` of the project's params.yaml, else ``sqlite:///<project root>/mlflow.db``.

    The environment wins so that CI, a cluster job or a teammate can redirect any run to another
    server without editing the versioned ``params.yaml`` (which would invalidate DVC's cache).
    """
    env = os.environ.get(ENV_URI, "").strip()
    if env:
        return env
    if configured is not None and str(configured).strip():
        return str(configured).strip()
    from_params = _params_uri()
    if from_params:
        return from_params
    return default_tracking_uri()


def _params_uri() -> str | None:
    """``tracking.uri`` of the project's params.yaml, so every stage (train, test, ...) agrees.

    A params file that cannot be read is ignored here: the stages that own it report that.
    """
    path = project_root() / "params.yaml"
    if not path.is_file():
        return None
    try:
        from skelact.config import load_params

        return load_params(path).tracking.uri
    except Exception:
        return None


def _scheme(uri: str) -> str:
    parsed = urlparse(uri)
    # A Windows drive letter or a bare path has no (or a one-letter) scheme: a local folder.
    return parsed.scheme.lower() if len(parsed.scheme) > 1 else ""


def _sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI, or None for an in-memory database."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("///"):
        raise TrackingError(
            f"tracking URI {uri!r}: a SQLite URI needs three slashes and a path, e.g. "
            f"'sqlite:///mlflow.db' (relative) or 'sqlite:////abs/path/mlflow.db' (absolute)"
        )
    path = rest[3:].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


@contextlib.contextmanager
def _fast_http_env() -> Iterator[None]:
    """Make the start-up probe fail within seconds instead of MLflow's minutes of retries."""
    saved = {k: os.environ.get(k) for k in _FAST_HTTP}
    os.environ.update(_FAST_HTTP)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_FAST_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
}


def _probe_sqlite(uri: str, path: Path) -> None:
    """Open the SQLite file once, directly (MLflow retries a bad file for about 100 s)."""
    import sqlite3

    if path.is_dir():
        raise TrackingError(f"tracking URI {uri!r}: {path} is a folder, not a database file")
    folder = path.resolve().parent
    # MLflow creates missing parent folders of a SQLite file; allow that where it can work.
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise TrackingError(
            f"tracking URI {uri!r}: cannot create the database in {folder} "
            f"({existing or folder} is not a writable folder)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=5)
        try:
            conn.execute("PRAGMA schema_version").fetchone()
            conn.execute("BEGIN IMMEDIATE")  # proves the file can be written (and is not locked)
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise TrackingError(
            f"tracking URI {uri!r}: {path} cannot be opened for writing as a SQLite database: {exc}"
        ) from exc


def _probe_database(uri: str) -> None:
    """Connect once to a database server with a short timeout (MLflow itself retries ~100 s)."""
    try:
        import sqlalchemy
    except ImportError as exc:  # pragma: no cover - mlflow depends on sqlalchemy
        raise TrackingError(f"tracking URI {uri!r} needs sqlalchemy: {exc}") from exc
    base = _scheme(uri).split("+", 1)[0]
    connect_args = {"timeout": 5} if base == "mssql" else {"connect_timeout": 5}
    try:
        engine = sqlalchemy.create_engine(uri, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()
    except ModuleNotFoundError as exc:
        raise TrackingError(
            f"tracking URI {uri!r}: the database driver is not installed ({exc.name}); "
            f"e.g. `pip install psycopg2-binary` (PostgreSQL) or `pymysql` (MySQL)"
        ) from exc
    except Exception as exc:
        raise TrackingError(
            f"tracking URI {uri!r}: cannot connect to the database: "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc


def check_tracking_uri(uri: str) -> str:
    """Prove that ``uri`` is a usable tracking back end, or raise :class:`TrackingError`.

    Checks, in order of cost: the scheme is one MLflow knows; a SQLite file's folder exists and is
    writable (and the file, if present, is a database MLflow can open); a server answers within
    a few seconds (no retries). Returns the URI (normalised: a bare path becomes ``file:``).
    """
    uri = str(uri).strip()
    if not uri:
        raise TrackingError("tracking URI is empty")
    scheme = _scheme(uri)
    base = scheme.split("+", 1)[0]
    known = (*_DB_SCHEMES, *_HTTP_SCHEMES, *_OTHER_SCHEMES)
    if scheme == "":
        uri = Path(uri).resolve().as_uri()
        base = "file"
    elif base not in known:
        raise TrackingError(
            f"tracking URI {uri!r}: unknown scheme {scheme!r}; use one of "
            f"sqlite:///path/mlflow.db, postgresql://user@host/db, http(s)://server:port, "
            f"or a local folder (file:///path/mlruns)"
        )
    if base == "sqlite":
        path = _sqlite_path(uri)
        if path is not None:
            _probe_sqlite(uri, path)
    elif base in _DB_SCHEMES:
        _probe_database(uri)
    elif base == "file":
        folder = Path(urlparse(uri).path)
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is None or not os.access(existing, os.W_OK):
            raise TrackingError(f"tracking URI {uri!r}: {existing or folder} is not writable")

    # The real probe: open the store and list one experiment.
    from mlflow.tracking import MlflowClient

    try:
        with _fast_http_env():
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    except Exception as exc:  # the message of MLflow's own error is kept, shortened
        detail = " ".join(str(exc).split())[:400]
        hint = ""
        if base in _HTTP_SCHEMES:
            hint = " (is `mlflow server` running there and reachable?)"
        elif base == "sqlite":
            hint = " (is the file an MLflow database?)"
        raise TrackingError(f"tracking URI {uri!r} is not usable{hint}: {detail}") from exc
    return uri


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> dotted keys, values as strings (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
            continue
        text = "None" if value is None else str(value)
        if len(text) > _MAX_PARAM_LEN:
            suffix = "...[truncated]"
            text = text[: _MAX_PARAM_LEN - len(suffix)] + suffix
        flat[name] = text
    return flat


def _finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Numbers only (bools and None dropped); NaN/inf are kept: MLflow stores them."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if value is None or isinstance(value, bool):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def _git_commit(cwd: Path) -> tuple[str | None, bool | None]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None, None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def default_tags() -> dict[str, str]:
    """Tags every run gets: code version, DVC stage/experiment, library versions."""
    from skelact import __version__

    tags = {"skelact.version": __version__, "python.version": sys.version.split()[0]}
    commit, dirty = _git_commit(Path.cwd())
    if commit:
        tags["git.commit"] = commit
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = str(dirty).lower()
    for env, tag in (("DVC_STAGE", "dvc.stage"), ("DVC_EXP_NAME", "dvc.exp_name")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    torch = sys.modules.get("torch")
    if torch is not None:
        tags["torch.version"] = str(torch.__version__)
    return tags


# --------------------------------------------------------------------------------------------
# Trackers
# --------------------------------------------------------------------------------------------


class NullTracker:
    """Tracking switched off: every call is accepted and does nothing (``run_id`` is None)."""

    enabled = False
    run_id: str | None = None
    experiment_id: str | None = None
    tracking_uri: str | None = None

    def __enter__(self) -> NullTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return False

    def log_params(self, params: Mapping[str, Any]) -> None:
        """No-op."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """No-op."""

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """No-op."""

    def log_artifacts(
        self, folder: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """No-op."""

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """No-op."""

    def log_model(self, model: Any, input_example: Any, name: str = "model") -> None:
        """No-op."""

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """No-op."""

    def flush(self) -> None:
        """No-op."""

    def finish(self, status: str = "FINISHED") -> None:
        """No-op."""


class Tracker(NullTracker):
    """One live MLflow run. Every logging call is guarded: failures warn once and are swallowed.

    Build it with :func:`open_run`; use it as a context manager so that the run ends FINISHED
    on success and FAILED on an exception (the exception still propagates).
    """

    enabled = True

    def __init__(
        self, *, run_id: str, experiment_id: str, tracking_uri: str, system_metrics: bool
    ) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.tracking_uri = tracking_uri
        self.system_metrics = system_metrics
        self._finished = False
        self._warned: set[str] = set()

    # -- guarded plumbing ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # a tracking problem must never stop training
            if what not in self._warned:
                self._warned.add(what)
                message = (
                    f"MLflow {what} failed for run {self.run_id} at {self.tracking_uri}: "
                    f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
                    f"(training continues; further {what} failures are not reported)"
                )
                warnings.warn(message, RuntimeWarning, stacklevel=3)
                _log.warning(message)

    @property
    def warnings_seen(self) -> set[str]:
        """Which kinds of logging calls have failed at least once (for tests and summaries)."""
        return set(self._warned)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")
        return False

    # -- logging -------------------------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) parameters; on a resumed run, unchanged values are accepted again."""
        import mlflow

        flat = flatten_params(params)
        with self._guard("log_params"):
            existing = mlflow.MlflowClient().get_run(self.run_id).data.params
            new = {k: v for k, v in flat.items() if k not in existing}
            changed = {
                k: (existing[k], v) for k, v in flat.items() if k in existing and existing[k] != v
            }
            if changed:
                # MLflow params are immutable; keep the first value and say what differed.
                self.set_tags(
                    {f"param_changed.{k}": f"{a} -> {b}"[:5000] for k, (a, b) in changed.items()}
                )
                warnings.warn(
                    f"run {self.run_id}: parameters differ from the logged ones and were not "
                    f"overwritten: {sorted(changed)}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            if new:
                mlflow.log_params(new, synchronous=False, run_id=self.run_id)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics asynchronously (non-numbers are skipped)."""
        import mlflow

        values = _finite_metrics(metrics)
        if not values:
            return
        with self._guard("log_metrics"):
            mlflow.log_metrics(values, step=step, synchronous=False, run_id=self.run_id)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags (values stringified)."""
        import mlflow

        with self._guard("set_tags"):
            clean = {str(k): str(v) for k, v in tags.items() if v is not None}
            if clean:
                mlflow.MlflowClient().log_batch(
                    self.run_id, tags=[mlflow.entities.RunTag(k, v) for k, v in clean.items()]
                )

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Copy one file into the run's artifact store (missing files warn, never raise)."""
        import mlflow

        with self._guard("log_artifact"):
            if not Path(path).is_file():
                raise FileNotFoundError(f"no such file: {path}")
            mlflow.MlflowClient().log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(
        self, folder: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Copy a folder's files into the run's artifact store."""
        import mlflow

        with self._guard("log_artifact"):
            mlflow.MlflowClient().log_artifacts(self.run_id, str(folder), artifact_path)

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        """Store a dict as a JSON/YAML artifact (by the file's extension)."""
        import mlflow

        with self._guard("log_artifact"):
            mlflow.MlflowClient().log_dict(self.run_id, dict(data), artifact_file)

    def log_model(self, model: Any, input_example: Any, name: str = "model") -> None:
        """Log a PyTorch model with ``mlflow.pytorch.log_model`` and an input example.

        Kept fast on purpose: pip requirements are given explicitly (MLflow would otherwise
        import the model in a subprocess to infer them, tens of seconds), and the serving-input
        validation (a full reload + predict) is skipped. What remains: one forward pass on the
        example to infer the signature, plus pickling the module (about the size of the weights).
        """
        import mlflow
        import numpy as np

        with self._guard("log_model"):
            import mlflow.pytorch
            import torch

            from skelact import __version__

            example = np.asarray(input_example)
            if example.dtype != np.float32:
                example = example.astype(np.float32)
            was_training = getattr(model, "training", False)
            model_cpu = model
            # A model on the GPU is logged from a CPU copy so that it loads anywhere.
            params = list(model.parameters()) if hasattr(model, "parameters") else []
            if params and params[0].device.type != "cpu":
                import copy

                model_cpu = copy.deepcopy(model).cpu()
            model_cpu.eval()
            try:
                with _active(self.run_id), warnings.catch_warnings():
                    # torch.export's archive writer warns about weight grouping on every save;
                    # it concerns GPU-resident weights, and this copy is on the CPU.
                    warnings.filterwarnings("ignore", message="No complete tensor found")
                    mlflow.pytorch.log_model(
                        model_cpu,
                        name=name,
                        input_example=example,
                        pip_requirements=[
                            f"torch=={torch.__version__.split('+')[0]}",
                            f"skelact=={__version__}",
                        ],
                        validate_serving_input=False,
                    )
            finally:
                if was_training:
                    model.train()

    def flush(self) -> None:
        """Wait for the asynchronous logging queue (errors are warned about, not raised)."""
        import mlflow

        with self._guard("flush"):
            mlflow.flush_async_logging()

    def finish(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED). Idempotent."""
        if self._finished:
            return
        self._finished = True
        import mlflow

        self.flush()
        with self._guard("finish"):
            active = mlflow.active_run()
            if active is not None and active.info.run_id == self.run_id:
                mlflow.end_run(status=status)
            else:
                mlflow.MlflowClient().set_terminated(self.run_id, status=status)


@contextlib.contextmanager
def _active(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the fluent active run for APIs that only know the active run."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    with mlflow.start_run(run_id=run_id, nested=active is not None):
        yield


def _experiment_id(client: Any, name: str, uri: str) -> str:
    """Get or create the experiment; new experiments keep artifacts next to a SQLite file.

    MLflow would otherwise put them under ``./mlruns`` of the *current* folder, which for a queued
    DVC experiment is a temporary workspace deleted afterwards.
    """
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = None
    if _scheme(uri) == "sqlite":
        path = _sqlite_path(uri)
        if path is not None:
            location = (path.resolve().parent / "mlruns").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # Another process (a parallel DVC queue worker) created it first.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _system_metrics_available() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def open_run(
    *,
    enabled: bool,
    experiment: str,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    system_metrics: bool | None = None,
    reopen_prefix: str = "resume.",
) -> NullTracker:
    """Start (or resume) an MLflow run and return its :class:`Tracker` (a context manager).

    ``enabled=False`` returns a :class:`NullTracker` without importing MLflow. ``tracking_uri`` is
    the configured URI (params/CLI); the environment's ``MLFLOW_TRACKING_URI`` wins over it, and
    the project's ``mlflow.db`` is the fallback. The URI is checked first: a wrong one raises
    :class:`TrackingError` before any training work. ``run_id`` resumes that run (same id, status
    back to RUNNING); when the run does not exist in this back end a new run is started and
    tagged ``skelact.resumed_from``. ``parent_run_id`` makes a linked child run (nested in the
    MLflow UI). System metrics (CPU, memory, GPU when available) are on when psutil is present.
    When a run is reopened, its original tags stay and the reopening process's differing facts
    are tagged with ``reopen_prefix`` (``resume.dvc.stage``, ``eval.git.commit``...).
    """
    if not enabled:
        return NullTracker()
    if not experiment:
        raise TrackingError("an experiment name is required when tracking is enabled")
    uri = check_tracking_uri(resolve_tracking_uri(tracking_uri))

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    if system_metrics is None:
        system_metrics = _system_metrics_available()
    auto_tags = default_tags()
    user_tags = {str(k): str(v) for k, v in (tags or {}).items() if v is not None}
    try:
        resume = None
        if run_id:
            try:
                resume = client.get_run(run_id)
            except Exception:
                warnings.warn(
                    f"MLflow run {run_id} not found at {uri}; starting a new run instead",
                    RuntimeWarning,
                    stacklevel=2,
                )
                user_tags["skelact.resumed_from"] = run_id
        # A run already active in this process (e.g. evaluation inside training) is kept: nest.
        nested = mlflow.active_run() is not None
        if resume is not None:
            active = mlflow.start_run(
                run_id=run_id, nested=nested, log_system_metrics=system_metrics
            )
        else:
            experiment_id = _experiment_id(client, experiment, uri)
            new_tags = {**auto_tags, **user_tags}
            if parent_run_id:
                new_tags["mlflow.parentRunId"] = parent_run_id
            active = mlflow.start_run(
                experiment_id=experiment_id,
                run_name=run_name,
                nested=nested,
                tags=new_tags,
                log_system_metrics=system_metrics,
            )
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(
            f"could not start an MLflow run in experiment {experiment!r} at {uri}: "
            f"{' '.join(str(exc).split())[:400]}"
        ) from exc
    tracker = Tracker(
        run_id=active.info.run_id,
        experiment_id=active.info.experiment_id,
        tracking_uri=uri,
        system_metrics=bool(system_metrics),
    )
    if resume is not None:
        tracker.set_tags(_reopen_tags(resume.data.tags, auto_tags, user_tags, reopen_prefix))
    return tracker


def _reopen_tags(
    existing: Mapping[str, str],
    auto_tags: Mapping[str, str],
    user_tags: Mapping[str, str],
    prefix: str,
) -> dict[str, str]:
    """Tags for a reopened run: the original run's facts (e.g. its DVC stage, git commit) stay;
    differing facts of the reopening process go under ``prefix`` (``resume.`` or ``eval.``)."""
    out = {k: v for k, v in auto_tags.items() if k not in existing}
    out.update(
        {f"{prefix}{k}": v for k, v in auto_tags.items() if k in existing and existing[k] != v}
    )
    out.update(user_tags)
    out[f"{prefix}at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    if prefix == "resume.":
        out["skelact.resumed"] = "true"
    return out


def open_eval_run(
    *,
    enabled: bool,
    experiment: str,
    run_id: str | None,
    child: bool = False,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    tags: Mapping[str, Any] | None = None,
) -> NullTracker:
    """Tracker for an evaluation of a trained checkpoint.

    With ``child=False`` evaluation metrics go into the training run itself (``run_id`` from the
    checkpoint), so one row in ``mlflow ui`` holds curves, test metrics and the confusion matrix.
    With ``child=True`` a new run linked to the training run is made (use it when evaluating one
    checkpoint on several data sets). Without a ``run_id`` (untracked training, foreign
    checkpoint) a stand-alone run is started in ``experiment``. The system-metrics sampler is off:
    an evaluation is short.
    """
    if not enabled:
        return NullTracker()
    if run_id and child:
        return open_run(
            enabled=True,
            experiment=experiment,
            run_name=run_name,
            tracking_uri=tracking_uri,
            tags=tags,
            parent_run_id=run_id,
            system_metrics=False,
        )
    return open_run(
        enabled=True,
        experiment=experiment,
        run_name=run_name,
        tracking_uri=tracking_uri,
        run_id=run_id,
        tags=tags,
        system_metrics=False,
        reopen_prefix="eval.",
    )


def is_finite(value: Any) -> bool:
    """True for a real, finite number (helper for callers building metric dicts)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
