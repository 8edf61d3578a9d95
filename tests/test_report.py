"""The cross-stage report from hand-written metrics files: two stages, some combinations missing."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import pytest

from tinyrs.cli import report as report_cli
from tinyrs.io import write_json
from tinyrs.report import collect, write_report

ROOT = Path(__file__).resolve().parents[1]


def _metrics(task: str, family: str, values: dict[str, tuple[float | None, int]], primary="accuracy",
             skipped: dict | None = None) -> dict:
    return {"task": task, "family": family, "primary": primary, "lenient": f"{primary}_lenient",
            "n": max(n for _, n in values.values()), "skipped": skipped or {},
            "metrics": {name: {"value": value, "n": n} for name, (value, n) in values.items()}}


@pytest.fixture
def eval_dir(tmp_path) -> Path:
    root = tmp_path / "eval"
    write_json(root / "base" / "cls_a.metrics.json",
               _metrics("cls_a", "classification", {"accuracy": (0.25, 100), "accuracy_lenient": (0.5, 100)}))
    write_json(root / "base" / "cls_b.metrics.json",
               _metrics("cls_b", "classification", {"accuracy": (0.75, 40), "accuracy_lenient": (0.8, 40)},
                        skipped={"image_missing": 2}))
    write_json(root / "sft" / "cls_a.metrics.json",
               _metrics("cls_a", "classification", {"accuracy": (0.5, 100), "accuracy_lenient": (0.9, 100)}))
    write_json(root / "sft" / "rs_vg.metrics.json",
               _metrics("rs_vg", "grounding", {"precision@0.5": (0.125, 8), "precision@0.5_lenient": (0.25, 4),
                                               "precision@0.5_small": (None, 0), "mean_iou": (0.3, 8)},
                        primary="precision@0.5"))
    write_json(root / "sft" / "cls_a.shard-0-of-2.metrics.json", {"task": "ignored"})  # shard files are not results
    return root


def test_markdown_table_with_missing_combinations(eval_dir, tmp_path):
    text = write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    lines = text.splitlines()
    assert "| family | task | metric | n | base | base (lenient) | sft | sft (lenient) |" in lines
    assert "| classification | cls_a | accuracy | 100 | 25.00 | 50.00 | 50.00 | 90.00 |" in lines
    assert "| classification | cls_b | accuracy | 40 | 75.00 | 80.00 | — | — |" in lines
    assert "| classification | **mean** |  |  | 50.00 | 65.00 | — | — |" in lines  # sft lacks cls_b: no mean
    assert "| grounding | rs_vg | precision@0.5 | 8 | — | — | 12.50 | 25.00 |" in lines
    assert "| rs_vg | mean_iou | — | 30.00 (n=8) |" in lines
    assert "| rs_vg | precision@0.5_small | — | — (n=0) |" in lines
    assert "- base/cls_b: image_missing 2" in lines
    assert {"- sft/cls_b: no metrics file", "- base/rs_vg: no metrics file"} <= set(lines)
    assert (tmp_path / "report" / "results.md").read_text() == text


def test_long_tables_keep_missing_combinations(eval_dir, tmp_path):
    write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    frame = pd.read_parquet(tmp_path / "report" / "results.parquet")
    assert list(frame.columns) == ["stage", "task", "family", "metric", "value", "n"]
    assert frame.equals(pd.read_csv(tmp_path / "report" / "results.csv", dtype={"n": "Int64"}))
    missing = frame[(frame.stage == "base") & (frame.task == "rs_vg")]
    assert set(missing.metric) == {"precision@0.5", "precision@0.5_lenient"}
    assert missing.value.isna().all() and missing.n.isna().all()
    mean = frame[(frame.stage == "base") & (frame.task == "mean") & (frame.metric == "accuracy")].iloc[0]
    assert math.isclose(mean.value, 0.5) and mean.n == 140 and mean.family == "classification"
    assert frame[(frame.stage == "sft") & (frame.task == "cls_a")].set_index("metric").value.to_dict() == \
        {"accuracy": 0.5, "accuracy_lenient": 0.9}


def test_one_plot_per_family(eval_dir, tmp_path):
    write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == ["classification.png", "grounding.png"]
    assert (tmp_path / "report" / "grounding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_tasks_without_any_metrics_file_are_listed(eval_dir):
    expected = {"lhrs_bench": {"file": "LHRS-Bench.json", "metric": "lhrs_accuracy", "family": "lhrs"}}
    results = collect(eval_dir, ["base", "sft"], expected)
    assert ("base", "lhrs_bench") in results.missing() and ("sft", "lhrs_bench") in results.missing()


def test_cli_prints_the_table(eval_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    args = parser.parse_args(["report", "--eval-dir", str(eval_dir), "--out-dir", str(tmp_path / "r"),
                              "--config", str(ROOT / "config.yaml")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "| grpo (lenient) |" in printed and "- grpo/cls_aid: no metrics file" in printed
