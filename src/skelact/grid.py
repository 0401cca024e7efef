"""Run the model x benchmark x seed grid as a SLURM job array, with DVC's bookkeeping intact.

Why this shape:

* The plan comes from DVC itself (``Repo.index`` for the stages and their exact commands,
  ``Repo.status`` for what is not up to date), so ``dvc.yaml`` stays the one definition of the
  pipeline and a grid runs exactly the commands ``dvc repro`` would.
* One array element per matrix item (``hcn-xsub-0``) runs that item's selected stages in order
  (train, then evaluate): evaluate needs only its own checkpoint and takes seconds, so chaining it
  inside the element costs nothing and needs no second array or per-element dependencies.
* No DVC command runs inside an element: many DVC processes on one repository fight over its
  lock. Elements only run the stage commands and append one status line per stage; the single
  dependent job (``afterany``) then records the finished stages with ``dvc commit -f`` and runs
  the stages that need all of them (the report), so the workspace ends as ``dvc repro`` leaves it.
* Stages *upstream* of the matrix (synth, preprocess) are brought up to date here, before
  planning, with ``dvc repro``: the matrix commands read their outputs, and only then does
  ``dvc status`` say exactly which items are stale.
* Preemption: elements are requeueable. SLURM's SIGTERM (preemption, ``scontrol requeue``) is
  forwarded to the stage, which checkpoints ``last.pt`` and exits; the requeued element
  (``SLURM_RESTART_COUNT`` > 0) reruns the stage with ``--resume``. The time-limit warning
  (``--signal=B:USR1@<s>``) does the same and requeues the element itself.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skelact.atomic import atomic_write_text
from skelact.errors import SkelactError, bounded

LAUNCHERS = ("slurm", "local")
GRID_DIR = "grid"
RESUMABLE_OUT = "last.pt"  # a stage with this output continues from it after a requeue
TIME_WARNING_S = 120  # the time-limit warning comes this long before SLURM kills an element


class GridError(SkelactError):
    """The grid cannot be planned, submitted or read."""


@dataclass(frozen=True)
class GridSettings:
    """What ``skelact grid`` was asked for (one field per CLI option)."""

    root: Path = Path(".")
    launcher: str = "slurm"
    stages: tuple[str, ...] = ("train", "evaluate")
    partition: str | None = None
    gpus_per_task: int = 0
    cpus_per_task: int | None = None
    time: str | None = None
    max_parallel: int | None = None
    dry_run: bool = False
    wait: bool = False


@dataclass
class StageJob:
    """One DVC stage as an element runs it: its exact command and the outputs it replaces."""

    name: str
    cmd: str
    outs: list[str]
    resume_from: str | None = None  # the stage's last.pt, if it can resume


@dataclass
class Element:
    """One array element: the stale selected stages of one matrix item, in pipeline order."""

    task: int
    item: str
    stages: list[StageJob]


@dataclass
class GridPlan:
    """What a grid will do: stale upstream stages (run first, here), elements, downstream."""

    upstream: list[str] = field(default_factory=list)
    elements: list[Element] = field(default_factory=list)
    downstream: list[str] = field(default_factory=list)
    downstream_stale: list[str] = field(default_factory=list)


@dataclass
class GridResult:
    """What ``run_grid`` did: the lines to print and, when known, the final summary."""

    lines: list[str]
    grid_dir: Path | None = None
    summary: dict | None = None
    scripts: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- planning (through DVC)


def _stage_cmd(stage) -> str:
    cmd = stage.cmd
    return " && ".join(cmd) if isinstance(cmd, list) else str(cmd)


def plan_grid(root: Path, stage_names: tuple[str, ...]) -> GridPlan:
    """Read the pipeline with DVC's API and keep what is not up to date.

    ``stage_names`` are matrix stages (``train``, ``evaluate``); their items form the elements.
    Upstream = stale stages the selected ones depend on; downstream = every stage depending on
    a selected one that is itself not selected (the report), run once all elements are done.
    """
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        stages = list(repo.index.stages)
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        changed = set(repo.status())  # keyed by address (relative to the cwd): map to names
    stale = {stage.name for stage in stages if stage.addressing in changed}
    matrix_names = sorted({s.name.split("@")[0] for s in stages if "@" in s.name})
    for name in stage_names:
        if name not in matrix_names:
            raise GridError(
                f"dvc.yaml: {bounded(name)} is not a matrix stage; choose from "
                f"{', '.join(matrix_names) or '(none)'}"
            )
    selected = [s for s in stages if "@" in s.name and s.name.split("@")[0] in stage_names]
    selected_set = set(selected)
    upstream, downstream = set(), set()
    for stage in selected:
        upstream |= nx.descendants(graph, stage) - selected_set
        downstream |= nx.ancestors(graph, stage) - selected_set
    # Dependencies first; independent stages in dvc.yaml's order (elements follow the matrix).
    in_file = {stage: i for i, stage in enumerate(stages)}
    sorted_stages = nx.lexicographical_topological_sort(graph.reverse(), key=in_file.__getitem__)
    order = {stage: i for i, stage in enumerate(sorted_stages)}

    # A stage runs if it is stale or if a stage it depends on runs (a retrained checkpoint makes
    # its evaluation stale), as in dvc repro; upstream stages are included for --dry-run.
    runs = {stage for stage in upstream if stage.name in stale}
    items: dict[str, list[StageJob]] = {}
    for stage in sorted(selected, key=order.__getitem__):
        if stage.name not in stale and not runs & set(graph.successors(stage)):
            continue
        runs.add(stage)
        outs = [str(out.def_path) for out in stage.outs]
        resume = next((p for p in outs if Path(p).name == RESUMABLE_OUT), None)
        job = StageJob(stage.name, _stage_cmd(stage), outs, resume)
        items.setdefault(stage.name.split("@", 1)[1], []).append(job)
    matrix = list(dict.fromkeys(stage.name.split("@", 1)[1] for stage in selected))
    ordered = sorted(items.items(), key=lambda pair: matrix.index(pair[0]))
    elements = [Element(i, item, jobs) for i, (item, jobs) in enumerate(ordered)]
    upstream_names = [s.name for s in sorted(upstream, key=order.__getitem__)]
    downstream_names = [s.name for s in sorted(downstream, key=order.__getitem__)]
    return GridPlan(
        upstream=[name for name in upstream_names if name in stale],
        elements=elements,
        downstream=downstream_names,
        downstream_stale=[name for name in downstream_names if name in stale],
    )


# ---------------------------------------------------------------- scripts


def _torchrun(cmd: str, gpus: int) -> str:
    """A multi-GPU element trains under torchrun inside its allocation (a free port per element)."""
    prefix = "skelact train "
    if gpus > 1 and cmd.startswith(prefix):
        return (
            f"torchrun --standalone --nproc-per-node {gpus} -m skelact train {cmd[len(prefix) :]}"
        )
    return cmd


_ELEMENT_FUNCTIONS = r"""
# One status line per stage: the dependent job records what finished (dvc commit) from these.
GRID_JOB="${SLURM_ARRAY_JOB_ID:-local}_${SLURM_ARRAY_TASK_ID}"
LOG="$GRID_DIR/logs/$GRID_JOB.out"
STATUS="$GRID_DIR/status/$SLURM_ARRAY_TASK_ID.jsonl"
: > "$STATUS"
child="" signalled="" requeue_self=""
forward() { signalled=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }
trap forward TERM          # preemption / scontrol requeue: checkpoint, exit; SLURM requeues
trap 'requeue_self=1; forward' USR1   # time limit near: checkpoint, exit, requeue ourselves

stage() {  # stage NAME RESUME_FROM CMD OUT...
  local name=$1 resume_from=$2 cmd=$3 rc
  shift 3
  if [ -n "$resume_from" ] && [ -f "$resume_from" ] && [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
    cmd="$cmd --resume"
  else
    rm -rf -- "$@"   # as dvc repro does: a stage starts without stale outputs
  fi
  echo "== $name (attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 ))): $cmd"
  bash -c "$cmd" & child=$!
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break   # wait was only interrupted by a signal
  done
  child=""
  printf '{"stage": "%s", "rc": %d, "job_id": "%s", "log": "%s", "restarts": %d}\n' \
    "$name" "$rc" "$GRID_JOB" "$LOG" "${SLURM_RESTART_COUNT:-0}" >> "$STATUS"
  if [ -n "$signalled" ]; then
    [ -n "$requeue_self" ] && [ -n "${SLURM_JOB_ID:-}" ] && scontrol requeue "$SLURM_JOB_ID"
    exit 143
  fi
  return "$rc"
}
"""


def _header(settings: GridSettings, name: str, grid_dir: Path, array: str | None) -> list[str]:
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name=skelact-{name}"]
    lines.append(f"#SBATCH --chdir={settings.root.resolve()}")
    if array is not None:
        lines += [
            f"#SBATCH --array={array}",
            f"#SBATCH --output={grid_dir}/logs/%A_%a.out",
            "#SBATCH --requeue",
            f"#SBATCH --signal=B:USR1@{TIME_WARNING_S}",
            "#SBATCH --open-mode=append",  # a requeued element keeps the earlier attempt's log
        ]
        if settings.gpus_per_task:
            lines.append(f"#SBATCH --gres=gpu:{settings.gpus_per_task}")
        if settings.cpus_per_task:
            lines.append(f"#SBATCH --cpus-per-task={settings.cpus_per_task}")
    else:
        lines.append(f"#SBATCH --output={grid_dir}/logs/%j-finish.out")
    if settings.partition:
        lines.append(f"#SBATCH --partition={settings.partition}")
    if settings.time:
        lines.append(f"#SBATCH --time={settings.time}")
    lines += [
        "#SBATCH --export=ALL",
        "set -uo pipefail",
        f"cd {shlex.quote(str(settings.root.resolve()))}",
    ]
    lines.append(f"GRID_DIR={shlex.quote(str(grid_dir))}")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:  # the team's tracking server, passed through explicitly (the jobs must reach it)
        lines.append(f"export MLFLOW_TRACKING_URI={shlex.quote(uri)}")
    return lines


def element_script(plan: GridPlan, settings: GridSettings, grid_dir: Path) -> str:
    """The array's batch script: element ``$SLURM_ARRAY_TASK_ID`` runs its item's stages."""
    last = len(plan.elements) - 1
    array = f"0-{last}" + (f"%{settings.max_parallel}" if settings.max_parallel else "")
    lines = _header(settings, "grid", grid_dir, array)
    lines.append(_ELEMENT_FUNCTIONS.strip("\n"))
    lines.append('case "$SLURM_ARRAY_TASK_ID" in')
    for element in plan.elements:
        lines.append(f"  {element.task})  # {element.item}")
        for job in element.stages:
            cmd = _torchrun(job.cmd, settings.gpus_per_task)
            args = " ".join(
                shlex.quote(a) for a in (job.name, job.resume_from or "", cmd, *job.outs)
            )
            lines.append(f"    stage {args} || exit 1")
        lines.append("    ;;")
    lines.append('  *) echo "no element $SLURM_ARRAY_TASK_ID in this grid" >&2; exit 2 ;;')
    lines.append("esac")
    return "\n".join(lines) + "\n"


def finish_script(settings: GridSettings, grid_dir: Path) -> str:
    """The dependent job: record finished stages, run the downstream ones, write the summary."""
    lines = _header(settings, "grid-finish", grid_dir, None)
    lines.append(f'{shlex.quote(sys.executable)} -m skelact.grid finish "$GRID_DIR"')
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- finishing (the dependent job)


def _dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True
    )


def finish(grid_dir: Path) -> dict:
    """Record the finished stages (``dvc commit -f``), run downstream, write ``summary.json``.

    A stage counts as finished only if its element reported exit status 0; anything else
    (failed, skipped after a failed train, never ran) is listed with its job id and log, stays
    not up to date, and a later ``skelact grid`` submits it again. Downstream stages (the report)
    run only when nothing failed, so they never summarise a partial grid.
    """
    plan = json.loads((grid_dir / "plan.json").read_text())
    root = Path(plan["root"])
    reported: dict[str, dict] = {}
    for path in sorted((grid_dir / "status").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                reported[record["stage"]] = record
    finished, failed = [], []
    job_prefix = plan.get("array_job") or "local"
    for element in plan["elements"]:
        for name in element["stages"]:
            record = reported.get(name)
            if record and record["rc"] == 0:
                finished.append(name)
                continue
            job_id = f"{job_prefix}_{element['task']}"
            failed.append(
                {
                    "stage": name,
                    "job_id": record["job_id"] if record else job_id,
                    "log": record["log"] if record else str(grid_dir / "logs" / f"{job_id}.out"),
                    "rc": record["rc"] if record else None,
                }
            )
    errors = []
    if finished:
        done = _dvc(root, "commit", "-f", *finished)
        if done.returncode:
            errors.append(f"dvc commit failed: {(done.stdout + done.stderr).strip()[-2000:]}")
    downstream = "skipped (failed elements)" if failed or errors else "nothing to run"
    if plan["downstream"] and not (failed or errors):
        done = _dvc(root, "repro", *plan["downstream"])
        downstream = "ran" if done.returncode == 0 else "failed"
        if done.returncode:
            errors.append(f"dvc repro failed: {(done.stdout + done.stderr).strip()[-2000:]}")
    summary = {
        "grid": grid_dir.name,
        "array_job": plan.get("array_job"),
        "finished": finished,
        "failed": failed,
        "downstream": {"stages": plan["downstream"], "result": downstream},
        "errors": errors,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_text(grid_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


# ---------------------------------------------------------------- launching


def _new_grid_dir(root: Path) -> Path:
    base = root / GRID_DIR
    base.mkdir(exist_ok=True)
    if not (base / ".gitignore").exists():  # logs and scripts are not part of the project
        (base / ".gitignore").write_text("*\n")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        path = base / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "logs").mkdir()
        (path / "status").mkdir()
        return path
    raise GridError(f"{base}: cannot create a new grid folder")


def _sbatch(args: list[str], root: Path) -> str:
    proc = subprocess.run(["sbatch", "--parsable", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode:
        raise GridError(f"sbatch {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip().split(";")[0]


def _wait_slurm(job_id: str, grid_dir: Path, poll_s: float = 1.0) -> None:
    """Until the finishing job has written the summary or left the queue (or been purged)."""
    while not (grid_dir / "summary.json").is_file():
        proc = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
        )
        gone = proc.returncode == 0 and not proc.stdout.strip()
        if gone or "Invalid job id" in proc.stderr:
            return
        time.sleep(poll_s)


def _run_local(grid_dir: Path, plan: GridPlan, settings: GridSettings) -> None:
    """The same scripts, run with bash here: elements with up to ``max_parallel`` at once."""

    def one(element: Element) -> None:
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(element.task)}
        for key in ("SLURM_ARRAY_JOB_ID", "SLURM_JOB_ID", "SLURM_RESTART_COUNT"):
            env.pop(key, None)
        log = grid_dir / "logs" / f"local_{element.task}.out"
        with open(log, "ab") as out:
            subprocess.run(
                ["bash", str(grid_dir / "element.sh")],
                cwd=settings.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    with ThreadPoolExecutor(max_workers=max(1, settings.max_parallel or 1)) as pool:
        list(pool.map(one, plan.elements))
    with open(grid_dir / "logs" / "local-finish.out", "ab") as out:
        subprocess.run(
            ["bash", str(grid_dir / "finish.sh")],
            cwd=settings.root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _check(settings: GridSettings) -> None:
    if settings.launcher not in LAUNCHERS:
        raise GridError(
            f"--launcher {bounded(settings.launcher)}: choose from {', '.join(LAUNCHERS)}"
        )
    if settings.max_parallel is not None and settings.max_parallel < 1:
        raise GridError(f"--max-parallel {settings.max_parallel}: must be at least 1")
    if settings.gpus_per_task < 0:
        raise GridError(f"--gpus-per-task {settings.gpus_per_task}: must be 0 or more")
    if not (settings.root / "dvc.yaml").is_file():
        raise GridError(
            f"{settings.root / 'dvc.yaml'}: not found (run skelact grid in the project)"
        )


def run_grid(settings: GridSettings) -> GridResult:
    """Plan, then submit (SLURM) or run (local) the grid; with ``dry_run`` only show the scripts."""
    _check(settings)
    root = settings.root.resolve()
    settings = GridSettings(**{**asdict(settings), "root": root, "stages": tuple(settings.stages)})
    if not settings.dry_run:
        _refuse_if_running(root)
    lines = [f"previous grid: {line}" for line in _previous_failures(root)]
    plan = plan_grid(root, settings.stages)
    if plan.upstream and not settings.dry_run:
        lines.append(f"bringing upstream stages up to date here: {', '.join(plan.upstream)}")
        done = _dvc(root, "repro", *plan.upstream)
        if done.returncode:
            raise GridError(
                f"dvc repro {' '.join(plan.upstream)} failed: "
                f"{(done.stdout + done.stderr).strip()[-1500:]}"
            )
        plan = plan_grid(root, settings.stages)
    elif plan.upstream:
        lines.append(f"would first run here: dvc repro {' '.join(plan.upstream)}")
    if not plan.elements and not plan.downstream_stale:
        lines.append("nothing to do: every grid stage is up to date")
        return GridResult(lines)

    grid_dir = _new_grid_dir(root) if not settings.dry_run else root / GRID_DIR / "<new>"
    scripts = {"finish.sh": finish_script(settings, grid_dir)}
    if plan.elements:
        scripts = {"element.sh": element_script(plan, settings, grid_dir), **scripts}
    if settings.dry_run:
        for name, text in scripts.items():
            dep = (
                " --dependency=afterany:<array job>"
                if name == "finish.sh" and plan.elements
                else ""
            )
            lines += [f"# ---- sbatch{dep} {name}", text.rstrip("\n")]
        lines.append(f"# {len(plan.elements)} element(s); nothing submitted (--dry-run)")
        return GridResult(lines, scripts=scripts)

    for name, text in scripts.items():
        atomic_write_text(grid_dir / name, text)
    record = {
        "root": str(root),
        "launcher": settings.launcher,
        "elements": [
            {"task": e.task, "item": e.item, "stages": [s.name for s in e.stages]}
            for e in plan.elements
        ],
        "downstream": plan.downstream,
        "array_job": None,
        "finish_job": None,
    }
    _write_plan(grid_dir, record)
    result = GridResult(lines, grid_dir=grid_dir, scripts=scripts)
    if settings.launcher == "local":
        lines.append(f"running {len(plan.elements)} element(s) here; logs in {grid_dir / 'logs'}")
        _run_local(grid_dir, plan, settings)
        result.summary = read_summary(grid_dir)
        lines += format_summary(result.summary)
        return result

    if plan.elements:
        record["array_job"] = _sbatch([str(grid_dir / "element.sh")], root)
        _write_plan(grid_dir, record)
        lines.append(f"submitted array job {record['array_job']}: {len(plan.elements)} element(s)")
    dependency = [f"--dependency=afterany:{record['array_job']}"] if record["array_job"] else []
    record["finish_job"] = _sbatch([*dependency, str(grid_dir / "finish.sh")], root)
    _write_plan(grid_dir, record)
    lines.append(
        f"submitted finishing job {record['finish_job']} (dvc commit, "
        f"{', '.join(plan.downstream) or 'no downstream stages'}); logs in {grid_dir / 'logs'}"
    )
    if settings.wait:
        _wait_slurm(record["finish_job"], grid_dir)
        result.summary = read_summary(grid_dir)
        lines += format_summary(result.summary)
    return result


# ---------------------------------------------------------------- reading back


def _write_plan(grid_dir: Path, record: dict) -> None:
    atomic_write_text(grid_dir / "plan.json", json.dumps(record, indent=2) + "\n")


def read_summary(grid_dir: Path) -> dict | None:
    """The final job's ``summary.json``, or None while the grid is still running."""
    path = grid_dir / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def format_summary(summary: dict | None) -> list[str]:
    """Readable lines: counts, then each failed stage with its SLURM job id and log."""
    if summary is None:
        return ["no summary yet: the finishing job has not run (squeue shows the grid's jobs)"]
    lines = [
        f"grid {summary['grid']}: {len(summary['finished'])} stage(s) finished and recorded, "
        f"{len(summary['failed'])} failed; downstream: {summary['downstream']['result']}"
    ]
    for fail in summary["failed"]:
        rc = "never ran" if fail["rc"] is None else f"exit {fail['rc']}"
        lines.append(f"  FAILED {fail['stage']}  job {fail['job_id']}  ({rc})  log {fail['log']}")
    lines += [f"  error: {error}" for error in summary["errors"]]
    return lines


def latest_grid(root: Path) -> Path | None:
    """The newest grid folder of the project (their names sort by submission time)."""
    base = Path(root) / GRID_DIR
    folders = [p for p in base.iterdir() if (p / "plan.json").is_file()] if base.is_dir() else []
    return max(folders, key=lambda p: (p.stat().st_mtime, p.name), default=None)


def grid_status(root: Path) -> list[str]:
    """``skelact grid --status``: the newest grid's jobs and, once finished, its summary."""
    grid_dir = latest_grid(Path(root).resolve())
    if grid_dir is None:
        return [f"no grid has run in {Path(root).resolve()}"]
    plan = json.loads((grid_dir / "plan.json").read_text())
    jobs = ", ".join(f"{k} {plan[k]}" for k in ("array_job", "finish_job") if plan.get(k))
    head = f"grid {grid_dir.name} ({plan['launcher']}{'; ' + jobs if jobs else ''})"
    return [head, *format_summary(read_summary(grid_dir))]


def _refuse_if_running(root: Path) -> None:
    """A second grid while one is queued would submit the same stale stages twice."""
    grid_dir = latest_grid(root)
    if grid_dir is None or read_summary(grid_dir) is not None:
        return
    job = json.loads((grid_dir / "plan.json").read_text()).get("finish_job")
    if not job or not shutil.which("squeue"):
        return
    proc = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
    if proc.returncode == 0 and proc.stdout.strip():
        raise GridError(
            f"{grid_dir}: grid still queued or running (finishing job {job}); "
            f"wait for it or scancel it first"
        )


def _previous_failures(root: Path) -> list[str]:
    grid_dir = latest_grid(root)
    summary = read_summary(grid_dir) if grid_dir else None
    return format_summary(summary) if summary and summary["failed"] else []


if __name__ == "__main__":  # the finishing job: python -m skelact.grid finish GRID_DIR
    if len(sys.argv) != 3 or sys.argv[1] != "finish":
        sys.exit("usage: python -m skelact.grid finish GRID_DIR")
    result = finish(Path(sys.argv[2]))
    print("\n".join(format_summary(result)))
    sys.exit(1 if result["failed"] or result["errors"] else 0)
