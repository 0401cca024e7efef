"""What people read: per-run history files and plots, and the report over all evaluated runs.

Per run (written by ``train`` and ``test`` through the functions below, so the engine computes
and this module presents): ``history.csv`` (loss, lr, samples/s per epoch), ``val_history.csv``
(validation epochs only: a plot of it draws no zeros for epochs without validation),
``curves.png`` and ``confusion.png``, each titled with model, benchmark and seed.

Over runs, ``skelact report``: every evaluated run in one table, next to the published numbers.

Why a separate stage: DVC reruns it whenever any evaluation changes, so ``reports/results.md``
always describes exactly the runs in the workspace. Per model and benchmark it lists the top-1
of each seed, the mean +- population std (numpy's default, as the SkelAct seed table uses),
parameters and GFLOPs of the model as trained, and the published SkelAct and paper figures
side by side. ``results.json`` holds the same numbers for programs; a PNG bar chart shows
accuracy against GFLOPs.

The published figures below are facts copied from the SkelAct README (its model zoo and seed
table): NTU RGB+D 60, top-1 in percent.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skelact.atomic import atomic_write_bytes, atomic_write_text
from skelact.config import fused_dir, item_dir
from skelact.data.streams import STREAMS
from skelact.errors import SkelactError

__all__ = [
    "PUBLISHED",
    "PUBLISHED_SOURCE",
    "DISPLAY_NAMES",
    "GFLOPS_NOTE",
    "RunResult",
    "ReportResult",
    "ReportError",
    "mean_std",
    "published_entry",
    "collect_runs",
    "build_report",
    "render_markdown",
    "write_report",
    "make_report",
    "run_title",
    "short_name",
    "write_train_history",
    "plot_training_curves",
    "plot_confusion",
    "training_curves_figure",
    "confusion_figure",
    "HISTORY_COLUMNS",
    "VAL_HISTORY_COLUMNS",
]

PUBLISHED_SOURCE = (
    "SkelAct README (github.com/hikvision-research/skelact, v0.1.0): NTU RGB+D 60 top-1 %, "
    "cross-subject seeds 0-4 and cross-view seed 0; 'paper' = the number each model's paper "
    "reports. "
    "ST-GCN++ and CTR-GCN: PYSKL's model zoo (github.com/kennymckormick/pyskl, "
    "configs/stgcn++/README.md and configs/ctrgcn/README.md at commit 3f6795f), one run each of "
    "the joint stream on NTU's 3-D skeletons (four-stream fusion: 92.1 for both on xsub)"
)

DISPLAY_NAMES = {
    "tscnn": "Two-Stream CNN",
    "hcn": "HCN",
    "hcnb": "HCN-Baseline",
    "tacnn": "Ta-CNN",
    "dgcn": "Dynamic GCN",
    "stgcnpp": "ST-GCN++",
    "ctrgcn": "CTR-GCN",
}

# (model, benchmark) -> published SkelAct per-seed top-1 (seed -> %), and the paper's number.
PUBLISHED: dict[tuple[str, str], dict[str, Any]] = {
    ("tscnn", "xsub"): {"seeds": [83.93, 83.78, 83.56, 84.04, 84.13], "paper": 83.2},
    ("hcn", "xsub"): {"seeds": [86.69, 85.89, 86.17, 86.63, 87.09], "paper": 86.5},
    ("hcnb", "xsub"): {"seeds": [87.89, 87.26, 87.71, 87.72, 87.77], "paper": 87.4},
    ("tacnn", "xsub"): {"seeds": [88.65, 88.53, 88.76, 88.49, 88.21], "paper": 88.8},
    ("dgcn", "xsub"): {"seeds": [88.49, 89.03, 88.87, 88.88, 89.23], "paper": 89.2},
    ("tscnn", "xview"): {"seeds": [90.23], "paper": 89.3},
    ("hcn", "xview"): {"seeds": [92.35], "paper": 91.1},
    ("tacnn", "xview"): {"seeds": [93.91], "paper": None},
    ("dgcn", "xview"): {"seeds": [94.23], "paper": None},
    # PYSKL's own runs (one each), the reference these two are exact to; see PUBLISHED_SOURCE
    ("stgcnpp", "xsub"): {"seeds": [89.3], "paper": None},
    ("ctrgcn", "xsub"): {"seeds": [89.6], "paper": None},
    ("stgcnpp", "xview"): {"seeds": [95.6], "paper": None},
    ("ctrgcn", "xview"): {"seeds": [95.6], "paper": None},
}

#: The stream name of a fusion's rows (the weighted sum of a model's streams, ``skelact fuse``).
FUSED = "fused"

GFLOPS_NOTE = (
    "GFLOPs are multiply-accumulates (GMACs) as counted by mmcv/ptflops (functional ops such as "
    "matmul not counted), the convention of the SkelAct table."
)


class ReportError(SkelactError):
    """An evaluation result is missing or malformed."""


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and *population* standard deviation (numpy's default ddof=0, as the seed table)."""
    import numpy as np

    if not values:
        return math.nan, math.nan
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std())


def published_entry(model: str, benchmark: str) -> dict[str, Any] | None:
    """Published SkelAct per-seed numbers, their mean +- std and the paper's number, or None."""
    entry = PUBLISHED.get((model, benchmark))
    if entry is None:
        return None
    mean, std = mean_std(entry["seeds"])
    return {
        "dataset": "ntu60",
        "seeds": list(entry["seeds"]),
        "mean": round(mean, 2),
        "std": round(std, 2),
        "paper": entry["paper"],
    }


@dataclass
class RunResult:
    """One evaluated (model, benchmark, stream, seed); ``stream`` is ``fused`` for a fusion."""

    model: str
    benchmark: str
    seed: int
    top1: float  # percent
    top5: float | None  # percent
    mean_class_accuracy: float | None  # percent
    num_samples: int
    num_classes: int | None
    train_seconds: float | None = None
    onnx_parity: float | None = None  # relative error of the exported model.onnx, if exported
    path: str = ""
    checkpoint: str | None = None  # the run's best.pt, when the runs folder is known
    stream: str = "joint"


@dataclass
class ReportResult:
    """What ``make_report`` wrote."""

    markdown: Path
    json: Path
    chart: Path
    rows: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Collecting
# --------------------------------------------------------------------------------------------


def _percent(value: Any, where: str, key: str, required: bool = True) -> float | None:
    if value is None:
        if required:
            raise ReportError(f"{where}: key {key!r} is missing")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ReportError(f"{where}: {key} is not a number: {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ReportError(f"{where}: {key} = {number} is not a fraction in [0, 1]")
    return 100.0 * number


def _read_run(
    path: Path,
    model: str,
    benchmark: str,
    seed: int,
    runs_root: Path | None = None,
    stream: str = "joint",
) -> RunResult:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportError(
            f"{path}: no evaluation result for {model}/{benchmark}/{stream}/seed {seed} "
            f"(run `dvc repro` or `skelact {'fuse' if stream == FUSED else 'test'}` first)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(metrics, Mapping):
        raise ReportError(f"{path}: expected a JSON object")
    train_seconds = onnx_parity = None
    run_dir = (
        item_dir(runs_root, benchmark, model, stream, seed)
        if runs_root and stream != FUSED
        else None
    )
    summary = run_dir / "summary.json" if run_dir else None
    if run_dir is not None:
        from skelact.deploy.metadata import read_export_metrics  # the report stage only

        exported = read_export_metrics(run_dir / "export.json")
        onnx_parity = float(exported["parity_rel_error"]) if exported else None
    if summary is not None and summary.is_file():
        try:
            value = json.loads(summary.read_text(encoding="utf-8")).get("seconds")
            train_seconds = float(value) if value is not None else None
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
            train_seconds = None
    return RunResult(
        model=model,
        benchmark=benchmark,
        seed=seed,
        top1=_percent(metrics.get("top1"), str(path), "top1"),
        top5=_percent(metrics.get("top5"), str(path), "top5", required=False),
        mean_class_accuracy=_percent(
            metrics.get("mean_class_accuracy"), str(path), "mean_class_accuracy", required=False
        ),
        num_samples=int(metrics.get("num_samples", 0)),
        num_classes=int(metrics["num_classes"]) if metrics.get("num_classes") else None,
        train_seconds=train_seconds,
        onnx_parity=onnx_parity,
        path=str(path),
        checkpoint=str(run_dir / "best.pt")
        if run_dir is not None and (run_dir / "best.pt").is_file()
        else None,
        stream=stream,
    )


def collect_runs(
    eval_root: str | os.PathLike[str],
    *,
    models: Iterable[str] | None = None,
    benchmarks: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    streams: Iterable[str] | None = None,
    runs_root: str | os.PathLike[str] | None = None,
    fused_root: str | os.PathLike[str] | None = None,
) -> list[RunResult]:
    """Read ``<eval_root>/<benchmark>/<model>/<stream>/seed<N>/metrics.json`` and, with more
    than one stream, the fusions ``<fused_root>/<benchmark>/<model>/seed<N>/metrics.json``.

    With ``models``, ``benchmarks``, ``seeds`` and ``streams`` given, exactly those runs are read
    and a missing one is an error (the pipeline's matrix). Without them, every run found on disk
    is read. Training time comes from ``<runs_root>/.../summary.json`` when present (default
    ``runs_root``: the ``runs`` folder next to ``eval_root``; ``fused_root``: ``fused``).
    """
    root = Path(eval_root)
    runs_dir = Path(runs_root) if runs_root is not None else root.resolve().parent / "runs"
    fused = Path(fused_root) if fused_root is not None else root.resolve().parent / "fused"
    order = list(DISPLAY_NAMES)
    if None not in (models, benchmarks, seeds, streams):
        streams = list(streams)
        runs = [
            _read_run(item_dir(root, b, m, st, s) / "metrics.json", m, b, int(s), runs_dir, st)
            for b in benchmarks
            for m in models
            for st in streams
            for s in seeds
        ]
        if len(streams) > 1:
            runs += [
                _read_run(fused_dir(fused, b, m, s) / "metrics.json", m, b, int(s), None, FUSED)
                for b in benchmarks
                for m in models
                for s in seeds
            ]
    else:
        found = [(p, p.parts[-5], p.parts[-4], p.parts[-3], p.parts[-2])
                 for p in root.glob("*/*/*/seed*/metrics.json")]  # fmt: skip
        found += [(p, p.parts[-4], p.parts[-3], FUSED, p.parts[-2])
                  for p in (fused / "results").glob("*/*/seed*/metrics.json")]  # fmt: skip
        runs = []
        for path, benchmark, model, stream, seed_dir in sorted(found):
            try:
                seed = int(seed_dir[len("seed") :])
            except ValueError:
                continue  # not a run folder of ours (e.g. "seed_old")
            if models is not None and model not in models:
                continue
            if benchmarks is not None and benchmark not in benchmarks:
                continue
            if seeds is not None and seed not in seeds:
                continue
            if streams is not None and stream not in streams and stream != FUSED:
                continue
            runs.append(_read_run(path, model, benchmark, seed, runs_dir, stream))
    runs.sort(key=lambda r: (r.benchmark, order.index(r.model) if r.model in order else 99,
                             _stream_rank(r.stream), r.seed))  # fmt: skip
    if not runs:
        raise ReportError(
            f"{root}: no evaluated runs found (expected <benchmark>/<model>/<stream>/seed<N>/)"
        )
    return runs


def _stream_rank(stream: str) -> int:
    return STREAMS.index(stream) if stream in STREAMS else len(STREAMS)


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------


def _complexity(runs: Sequence[RunResult]) -> dict[str, dict]:
    """Params and GFLOPs of each model as trained: from its first run's checkpoint (its layout,
    channels and head), else NTU's input with the evaluated class count."""
    from skelact.models.complexity import checkpoint_complexity, model_complexity

    out: dict[str, dict] = {}
    for model in sorted({r.model for r in runs}):
        mine = [r for r in runs if r.model == model]
        saved = next((r.checkpoint for r in mine if r.checkpoint), None)
        if saved is not None:
            out[model] = checkpoint_complexity(saved)
        else:
            classes = next((r.num_classes for r in mine if r.num_classes), None) or 60
            out[model] = model_complexity(model, num_classes=classes)
    return out


def build_report(
    runs: Sequence[RunResult],
    *,
    source: str = "synthetic",
    complexity: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report as plain data: one row per (benchmark, model, stream), in the order runs were
    given; a model's fusion of streams is the row of stream ``fused``."""
    order: list[tuple[str, str, str]] = []
    grouped: dict[tuple[str, str, str], list[RunResult]] = {}
    for run in runs:
        key = (run.benchmark, run.model, run.stream)
        if key not in grouped:
            order.append(key)
            grouped[key] = []
        grouped[key].append(run)
    if complexity is None:
        complexity = _complexity(runs)
    rows = []
    for benchmark, model, stream in order:
        group = sorted(grouped[(benchmark, model, stream)], key=lambda r: r.seed)
        published = None
        if source != "custom" and stream == "joint":
            published = published_entry(model, benchmark)
        mean, std = mean_std([r.top1 for r in group])
        top5 = [r.top5 for r in group if r.top5 is not None]
        cx = dict(complexity.get(model, {}))
        if stream == FUSED:  # an ensemble runs one model per stream
            same = {r.stream for r in runs if (r.benchmark, r.model) == (benchmark, model)}
            n = len(same - {FUSED})
            cx = {k: (v * n if k in ("params", "gflops") and v is not None else v)
                  for k, v in cx.items()}  # fmt: skip
        rows.append(
            {
                "model": model,
                "name": DISPLAY_NAMES.get(model, model),
                "benchmark": benchmark,
                "stream": stream,
                "seeds": [r.seed for r in group],
                "top1": [round(r.top1, 4) for r in group],
                "top1_mean": round(mean, 4),
                "top1_std": round(std, 4),
                "top5_mean": round(mean_std(top5)[0], 4) if top5 else None,
                "num_samples": group[0].num_samples,
                "num_classes": group[0].num_classes,
                "params": cx.get("params"),
                "gflops": cx.get("gflops"),
                "input_shape": cx.get("input_shape"),
                "train_seconds": [r.train_seconds for r in group],
                "onnx_parity_max": max(parity)
                if (parity := [r.onnx_parity for r in group if r.onnx_parity is not None])
                else None,
                "published": published,
            }
        )
    return {
        "source": source,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "gflops_note": GFLOPS_NOTE,
        "published_source": PUBLISHED_SOURCE,
        "rows": rows,
    }


def _fmt(value: float | None, digits: int = 2) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def render_markdown(report: Mapping[str, Any]) -> str:
    """``results.md``: one table per benchmark, then notes on how to read it."""
    source = report["source"]
    lines = [
        "# Results",
        "",
        f"Data source: **{source}**. Top-1 accuracy in % on the benchmark's val split "
        f"(the best-val checkpoint of each run); mean +- population std over seeds.",
        "",
    ]
    own_data = source == "custom"
    if own_data:
        lines += ["Own data (`data.source: custom`): no published figures apply.", ""]
    elif source != "ntu60":
        lines += [
            "The published columns are NTU RGB+D 60 results; "
            + (
                "synthetic data is a smoke test of the pipeline, so its accuracy is not "
                "comparable with them."
                if source == "synthetic"
                else "they are shown for scale only."
            ),
            "",
        ]
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in report["rows"]))
    for benchmark in benchmarks:
        lines += [
            f"## {benchmark}",
            "",
            "| model | stream | top-1 per seed | mean +- std | top-5 | params (M) | GFLOPs "
            + ("| ONNX parity |" if own_data else "| published | paper | ONNX parity |"),
            "|---|---|---|---|---|---|---|" + ("---|" if own_data else "---|---|---|"),
        ]
        for row in (r for r in report["rows"] if r["benchmark"] == benchmark):
            per_seed = ", ".join(
                f"s{s}: {_fmt(v)}" for s, v in zip(row["seeds"], row["top1"], strict=True)
            )
            pub = row["published"]
            if pub is None:
                pub_text, paper = "-", "-"
            elif len(pub["seeds"]) > 1:
                pub_text = f"{pub['mean']:.2f} +- {pub['std']:.2f}"
                paper = _fmt(pub["paper"], 1)
            else:
                pub_text = f"{pub['seeds'][0]:.2f}"
                paper = _fmt(pub["paper"], 1)
            params = "-" if row["params"] is None else f"{row['params'] / 1e6:.3f}"
            parity = row.get("onnx_parity_max")
            onnx = "-" if parity is None else f"{parity:.1e}"
            lines.append(
                f"| {row['name']} | {row.get('stream', 'joint')} | {per_seed} | "
                f"{_fmt(row['top1_mean'])} +- "
                f"{_fmt(row['top1_std'])} | {_fmt(row['top5_mean'])} | {params} | "
                f"{_fmt(row['gflops'], 4)} | "
                + (f"{onnx} |" if own_data else f"{pub_text} | {paper} | {onnx} |")
            )
        lines.append("")
    classes = {r["num_classes"] for r in report["rows"] if r["num_classes"]}
    shapes = sorted({" x ".join(map(str, r["input_shape"][1:])) for r in report["rows"]
                     if r.get("input_shape")}) or ["3 x T x 25 x 2"]  # fmt: skip
    lines += [
        "Notes:",
        f"- {report['gflops_note']} Params and GFLOPs are for one sample of C x T x V x M = "
        f"{', '.join(shapes)} (T: the recipe's clip length) with the trained head "
        f"({', '.join(str(c) for c in sorted(classes)) or '?'} classes"
        f"{'' if own_data else '; the published table uses 60'}).",
        *([] if own_data else [f"- Published: {report['published_source']}."]),
        "- ONNX parity: the largest relative error of the exported `model.onnx` (ONNX Runtime) "
        "against PyTorch over the seeds; an export above 1e-4 is refused, so '-' means not "
        "exported.",
        *(
            [
                "- Stream `fused`: the weighted sum of the model's streams' class scores "
                "(`skelact fuse`, weights in params.yaml `fuse`); its params and GFLOPs are "
                "those of all its stream models together. The SkelAct models' published "
                "figures are joint-stream only; no peer publishes multi-stream figures for them."
            ]
            if any(r.get("stream") == FUSED for r in report["rows"])
            else []
        ),
        "- Chart: `accuracy_vs_gflops.png`; numbers for programs: `results.json`.",
        "",
    ]
    return "\n".join(lines)


def render_chart(report: Mapping[str, Any], path: Path) -> None:
    """Bar chart: top-1 (mean +- std over seeds) per model, models ordered by GFLOPs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    # one bar per model: its fusion when streams were fused, else its (single) stream
    streams = [r.get("stream", "joint") for r in report["rows"]]
    shown = FUSED if FUSED in streams else streams[0]
    rows = [r for r in report["rows"] if r.get("stream", "joint") == shown]
    benchmarks = list(dict.fromkeys(r["benchmark"] for r in rows))
    models = sorted(
        dict.fromkeys(r["model"] for r in rows),
        key=lambda m: next((r["gflops"] or 0.0) for r in rows if r["model"] == m),
    )
    width = 0.8 / max(len(benchmarks), 1)
    fig, ax = plt.subplots(figsize=(1.6 * len(models) + 2.5, 4.2), dpi=120)
    x = np.arange(len(models))
    for i, benchmark in enumerate(benchmarks):
        by_model = {r["model"]: r for r in rows if r["benchmark"] == benchmark}
        means = [by_model[m]["top1_mean"] if m in by_model else np.nan for m in models]
        stds = [by_model[m]["top1_std"] if m in by_model else 0.0 for m in models]
        offset = (i - (len(benchmarks) - 1) / 2) * width
        bars = ax.bar(
            x + offset, means, width, yerr=stds, capsize=3, label=f"{benchmark} (this run)"
        )
        for bar, mean, std in zip(bars, means, stds, strict=True):
            if not np.isnan(mean):
                ax.annotate(
                    f"{mean:.1f}",
                    (bar.get_x() + bar.get_width() / 2, mean + std),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
        published = [
            (by_model[m]["published"] or {}).get("mean") if m in by_model else None for m in models
        ]
        if any(p is not None for p in published):
            ax.scatter(
                [xx + offset for xx, p in zip(x, published, strict=True) if p is not None],
                [p for p in published if p is not None],
                marker="_",
                s=400,
                color="black",
                zorder=3,
                label=f"{benchmark} SkelAct published (NTU 60)" if i == 0 else None,
            )
    labels = []
    for m in models:
        gf = next((r["gflops"] for r in rows if r["model"] == m), None)
        labels.append(f"{DISPLAY_NAMES.get(m, m)}\n{_fmt(gf, 3)} GFLOPs")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"Accuracy vs complexity ({report['source']}, {shown} stream); GFLOPs = GMACs "
        "(mmcv/ptflops)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_report(report: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> ReportResult:
    """Write results.md, results.json and accuracy_vs_gflops.png atomically into ``out_dir``."""
    out = Path(out_dir)
    md, js, png = out / "results.md", out / "results.json", out / "accuracy_vs_gflops.png"
    atomic_write_bytes(js, (json.dumps(report, indent=2, allow_nan=True) + "\n").encode("utf-8"))
    atomic_write_bytes(md, render_markdown(report).encode("utf-8"))
    render_chart(report, png)
    return ReportResult(markdown=md, json=js, chart=png, rows=list(report["rows"]))


def make_report(
    *,
    eval_root: str | os.PathLike[str] = "eval",
    out_dir: str | os.PathLike[str] = "reports",
    source: str = "synthetic",
    models: Sequence[str] | None = None,
    benchmarks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    streams: Sequence[str] | None = None,
    runs_root: str | os.PathLike[str] | None = None,
    fused_root: str | os.PathLike[str] | None = None,
) -> ReportResult:
    """The report stage: collect, build, write. With the lists given (the pipeline's matrix)
    exactly those runs are reported and a missing one is an error."""
    runs = collect_runs(eval_root, models=models, benchmarks=benchmarks, seeds=seeds,
                        streams=streams, runs_root=runs_root, fused_root=fused_root)  # fmt: skip
    return write_report(build_report(runs, source=source), out_dir)


# --------------------------------------------------------------------------------------------
# Per-run files: history tables and plots
# --------------------------------------------------------------------------------------------

HISTORY_COLUMNS = ("epoch", "loss", "lr", "samples_per_s")
VAL_HISTORY_COLUMNS = ("epoch", "val_top1", "val_top5")


def run_title(model: str, benchmark: str | None, seed: int | None) -> str:
    """'hcn · xsub · seed 0': what every plot of a run is titled with (unknown parts left out)."""
    parts = [model, benchmark, None if seed is None else f"seed {seed}"]
    return " · ".join(str(p) for p in parts if p not in (None, ""))


def _csv(rows: Iterable[Sequence[Any]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def write_train_history(records: Sequence[Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    """``history.csv`` (every epoch) and ``val_history.csv`` (validated epochs only).

    Two files because DVC's line plot draws an empty cell as 0: validation columns beside epochs
    without validation made every run's main curve a saw-tooth.
    """
    out_dir = Path(out_dir)
    val = [r for r in records if r.get("val_top1") is not None]
    paths = {"history": out_dir / "history.csv", "val_history": out_dir / "val_history.csv"}
    atomic_write_text(
        paths["history"],
        _csv([HISTORY_COLUMNS, *([r[c] for c in HISTORY_COLUMNS] for r in records)]),
    )
    atomic_write_text(
        paths["val_history"],
        _csv([VAL_HISTORY_COLUMNS, *([r[c] for c in VAL_HISTORY_COLUMNS] for r in val)]),
    )
    return paths


def _save_png(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """``curves.png``: see :func:`training_curves_figure`."""
    _save_png(training_curves_figure(records, title), Path(path))


def training_curves_figure(records: Sequence[Mapping[str, Any]], title: str) -> Any:
    """Training loss per epoch, and val top-1/top-5 at the validated epochs."""
    plt = _pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot([r["epoch"] for r in records], [r["loss"] for r in records], marker=".")
    a.set_xlabel("epoch")
    a.set_ylabel("train loss")
    val = [r for r in records if r.get("val_top1") is not None]
    b.plot([r["epoch"] for r in val], [r["val_top1"] for r in val], marker="o", label="top-1")
    b.plot([r["epoch"] for r in val], [r["val_top5"] for r in val], marker="o", label="top-5")
    b.set_xlabel("epoch")
    b.set_ylabel("val accuracy")
    b.set_ylim(0, 1)
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def short_name(name: str, width: int = 18) -> str:
    """An action name cut at a word boundary to about ``width`` characters ('...' when cut)."""
    if len(name) <= width:
        return name
    cut = name[: width - 1].rsplit(" ", 1)[0] if " " in name[: width - 1] else name[: width - 1]
    return cut.rstrip(" /,(") + "…"


def plot_confusion(conf: Any, path: Path, title: str, class_names: Sequence[str]) -> None:
    """``confusion.png``: see :func:`confusion_figure`."""
    _save_png(confusion_figure(conf, title, class_names), Path(path))


def confusion_figure(conf: Any, title: str, class_names: Sequence[str]) -> Any:
    """Row-normalised heat map (rows: true class), one integer tick per class with its short name.

    Beyond 40 classes every k-th class is labelled, so that 120 names stay legible.
    """
    import numpy as np

    plt = _pyplot()
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, np.maximum(rows, 1), dtype=np.float64)
    n = conf.shape[0]
    size = min(5 + n * 0.14, 16)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    im = ax.imshow(norm, cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(0, n, max(1, -(-n // 40)))
    labels = [f"{i} {short_name(class_names[i])}" for i in ticks]
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion (row-normalised): {title}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
