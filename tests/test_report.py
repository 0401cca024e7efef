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


def _metrics(root, benchmark, model, seed, top1, **extra):
    folder = root / "eval" / benchmark / model / f"seed{seed}"
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
        numbers = " | ".join(f"{v:.2f}" for v in entry["seeds"])
        assert numbers in accuracy, (model, benchmark)
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
    summary = tmp_path / "runs" / "xsub" / "hcn" / "seed0"
    summary.mkdir(parents=True)
    (summary / "summary.json").write_text(json.dumps({"seconds": 12.5}))
    runs = collect_runs(tmp_path / "eval", models=["hcn", "dgcn"], benchmarks=["xsub"],
                        seeds=[0, 1, 2, 3, 4][:1])  # fmt: skip
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
    assert re.search(r"\| HCN \| s0: 86\.69, .* \| 86\.49 \+- 0\.42 \| 99\.00 \| 1\.047 \| 0\.1964 "
                     r"\| 86\.49 \+- 0\.42 \| 86\.5 \|", text)  # fmt: skip
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
        collect_runs(tmp_path / "eval", models=["hcn"], benchmarks=["xsub"], seeds=[0, 1])
    _metrics(tmp_path, "xsub", "hcn", 2, 85.0)
    with pytest.raises(ReportError, match=r"seed2/metrics.json: top1 = 85.0 is not a fraction"):
        collect_runs(tmp_path / "eval")
    (tmp_path / "eval" / "xsub" / "hcn" / "seed2" / "metrics.json").write_text("{oops")
    with pytest.raises(ReportError, match="not valid JSON"):
        collect_runs(tmp_path / "eval")
    with pytest.raises(ReportError, match="no evaluated runs found"):
        collect_runs(tmp_path / "nothing")
