"""The results report: published numbers, per-seed statistics, files written atomically."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from skelact.report import (
    PUBLISHED,
    ReportError,
    build_report,
    collect_runs,
    make_report,
    mean_std,
    published_entry,
    render_markdown,
)

# Fixed complexity figures so these tests do not build models (their own tests cover that).
COMPLEXITY = {
    "hcn": {"params": 1_047_036, "gflops": 0.1964},
    "dgcn": {"params": 3_748_945, "gflops": 2.3952},
}


def _metrics(root, benchmark, model, seed, top1, stream="joint", **extra):
    folder = (
        root / "fused" / "results" / benchmark / model / f"seed{seed}"
        if stream == "fused"
        else root / "eval" / benchmark / model / stream / f"seed{seed}"
    )
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"top1": top1, "top5": 0.99, "mean_class_accuracy": top1 - 0.01, "num_samples": 100,
               "num_classes": 60, **extra}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(payload))
    return folder


def test_published_seed_table_statistics(reference_dir):
    expected = {"tscnn": "83.89 +- 0.20", "hcn": "86.49 +- 0.42", "hcnb": "87.67 +- 0.21",
                "tacnn": "88.53 +- 0.19", "dgcn": "88.90 +- 0.24"}  # fmt: skip
    for model, text in expected.items():
        entry = published_entry(model, "xsub")
        assert f"{entry['mean']:.2f} +- {entry['std']:.2f}" == text
    # The encoded numbers are the ones of the reference README (ACCURACY.md), row by row.
    accuracy = (reference_dir / "ACCURACY.md").read_text()
    assert "86.69 | 85.89 | 86.17 | 86.63 | 87.09 | 86.49 +- 0.42 | 86.5" in accuracy
    for (model, benchmark), entry in PUBLISHED.items():
        if model in expected:  # PYSKL's two come from PYSKL's model zoo (docs/baselines.md)
            numbers = " | ".join(f"{v:.2f}" for v in entry["seeds"])
            assert numbers in accuracy, (model, benchmark)
    assert published_entry("stgcnpp", "xsub")["seeds"] == [89.3]
    assert published_entry("ctrgcn", "xsub")["seeds"] == [89.6]
    assert published_entry("hcnb", "xview") is None  # not published


def test_mean_std_is_the_population_std():
    values = [86.69, 85.89, 86.17, 86.63, 87.09]
    mean, std = mean_std(values)
    assert round(mean, 2) == 86.49 and round(std, 2) == 0.42
    assert std == pytest.approx(float(np.std(values)))
    assert std < float(np.std(values, ddof=1))


def test_report_rows_markdown_json_and_chart(tmp_path):
    for seed, top1 in enumerate([0.8669, 0.8589, 0.8617, 0.8663, 0.8709]):
        _metrics(tmp_path, "xsub", "hcn", seed, top1)
    _metrics(tmp_path, "xsub", "dgcn", 0, 0.9)
    summary = tmp_path / "runs" / "xsub" / "hcn" / "joint" / "seed0"
    summary.mkdir(parents=True)
    (summary / "summary.json").write_text(json.dumps({"seconds": 12.5}))
    runs = collect_runs(tmp_path / "eval", models=["hcn", "dgcn"], benchmarks=["xsub"],
                        seeds=[0, 1, 2, 3, 4][:1], streams=["joint"])  # fmt: skip
    assert [(r.model, r.seed, r.train_seconds) for r in runs] == [
        ("hcn", 0, 12.5),
        ("dgcn", 0, None),
    ]

    runs = collect_runs(tmp_path / "eval")  # everything on disk, in registry order
    report = build_report(runs, source="ntu60", complexity=COMPLEXITY)
    hcn, dgcn = report["rows"]
    assert (hcn["model"], dgcn["model"]) == ("hcn", "dgcn")
    assert hcn["seeds"] == [0, 1, 2, 3, 4]
    assert round(hcn["top1_mean"], 2) == 86.49 and round(hcn["top1_std"], 2) == 0.42
    assert hcn["published"]["mean"] == 86.49 and hcn["published"]["paper"] == 86.5
    assert hcn["params"] == 1_047_036 and hcn["gflops"] == 0.1964
    assert dgcn["top1"] == [90.0] and dgcn["top1_std"] == 0.0

    text = render_markdown(report)
    assert re.search(r"\| HCN \| joint \| s0: 86\.69, .* \| 86\.49 \+- 0\.42 \| 99\.00 \| "
                     r"1\.047 \| 0\.1964 \| 86\.49 \+- 0\.42 \| 86\.5 \|", text)  # fmt: skip
    assert "GMACs" in text and "mmcv/ptflops" in text

    result = make_report(eval_root=tmp_path / "eval", out_dir=tmp_path / "reports", source="ntu60")
    data = json.loads(result.json.read_text())
    assert [r["model"] for r in data["rows"]] == ["hcn", "dgcn"]
    assert data["rows"][0]["params"] == 1_047_036  # from the models package, 60 classes
    assert abs(data["rows"][0]["gflops"] - 0.1964) < 1e-3
    assert result.markdown.read_text().startswith("# Results")
    assert result.chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    leftovers = [p.name for p in (tmp_path / "reports").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # written through temporary files, renamed


def test_missing_or_bad_results_are_clear_errors(tmp_path):
    _metrics(tmp_path, "xsub", "hcn", 0, 0.5)
    with pytest.raises(ReportError, match=r"seed1/metrics.json: no evaluation result for hcn/xsub"):
        collect_runs(tmp_path / "eval", models=["hcn"], benchmarks=["xsub"], seeds=[0, 1],
                     streams=["joint"])  # fmt: skip
    _metrics(tmp_path, "xsub", "hcn", 2, 85.0)
    with pytest.raises(ReportError, match=r"seed2/metrics.json: top1 = 85.0 is not a fraction"):
        collect_runs(tmp_path / "eval")
    (tmp_path / "eval" / "xsub" / "hcn" / "joint" / "seed2" / "metrics.json").write_text("{oops")
    with pytest.raises(ReportError, match="not valid JSON"):
        collect_runs(tmp_path / "eval")
    with pytest.raises(ReportError, match="no evaluated runs found"):
        collect_runs(tmp_path / "nothing")


def test_streams_and_their_fusion_are_rows_of_their_own(tmp_path):
    """Each stream is a row; the fusion row counts every stream model's params; only the joint
    stream carries SkelAct's (joint-only) published figures; a missing fusion is an error."""
    for stream, top1 in (("joint", 0.80), ("bone", 0.82), ("fused", 0.86)):
        _metrics(tmp_path, "xsub", "hcn", 0, top1, stream=stream)
    matrix = {"models": ["hcn"], "benchmarks": ["xsub"], "seeds": [0]}
    runs = collect_runs(tmp_path / "eval", **matrix, streams=["joint", "bone"])
    assert [(r.stream, r.top1) for r in runs] == [("joint", 80.0), ("bone", 82.0), ("fused", 86.0)]
    report = build_report(runs, source="ntu60", complexity=COMPLEXITY)
    joint, bone, fused = report["rows"]
    assert joint["published"]["mean"] == 86.49 and bone["published"] is None
    assert fused["published"] is None and fused["params"] == 2 * 1_047_036
    text = render_markdown(report)
    assert "| HCN | bone | s0: 82.00 |" in text and "| HCN | fused | s0: 86.00 |" in text
    assert "weighted sum" in text
    assert [r.stream for r in collect_runs(tmp_path / "eval")] == ["joint", "bone", "fused"]
    (tmp_path / "fused" / "results" / "xsub" / "hcn" / "seed0" / "metrics.json").unlink()
    with pytest.raises(ReportError, match="no evaluation result for hcn/xsub/fused/seed 0"):
        collect_runs(tmp_path / "eval", **matrix, streams=["joint", "bone"])


def test_run_plots_name_the_run_and_label_classes():
    from skelact.data.ntu import action_names
    from skelact.report import confusion_figure, run_title, short_name, training_curves_figure

    title = run_title("hcn", "xsub", 3)
    assert title == "hcn · xsub · seed 3" and run_title("hcn", None, None) == "hcn"
    names = list(action_names(60))
    conf = np.diag(np.arange(1, 61))
    fig = confusion_figure(conf, title, names)
    ax = fig.axes[0]
    assert title in ax.get_title()
    ticks = ax.get_xticks()
    assert list(ticks) == list(range(0, 60, 2))  # integer class indices, not -0.5 .. 59.5
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0 drink water" and labels[1] == f"2 {short_name(names[2])}"
    assert all(len(t) <= 22 for t in labels)
    small = confusion_figure(np.eye(4, dtype=int), title, names[:4]).axes[0]
    assert [t.get_text() for t in small.get_yticklabels()][3] == "3 brushing hair"
    records = [{"epoch": 1, "loss": 2.0, "val_top1": None, "val_top5": None},
               {"epoch": 2, "loss": 1.0, "val_top1": 0.5, "val_top5": 0.9}]  # fmt: skip
    curves = training_curves_figure(records, title)
    assert curves._suptitle.get_text() == title
    assert list(curves.axes[1].lines[0].get_xdata()) == [2]  # no zero for epoch 1


def test_history_files_keep_validation_epochs_apart(tmp_path):
    from skelact.report import write_train_history

    records = [{"epoch": e, "loss": 1.0 / e, "lr": 0.1, "samples_per_s": 10.0,
                "val_top1": 0.5 if e % 2 == 0 else None, "val_top5": 0.9 if e % 2 == 0 else None}
               for e in (1, 2, 3, 4)]  # fmt: skip
    paths = write_train_history(records, tmp_path)
    assert paths["history"].read_text().splitlines()[0] == "epoch,loss,lr,samples_per_s"
    assert paths["val_history"].read_text().splitlines() == [
        "epoch,val_top1,val_top5", "2,0.5,0.9", "4,0.5,0.9"
    ]  # fmt: skip
