"""The cross-stage report from hand-written metrics files: two stages, some combinations missing; every score with
its n and 95% Wilson interval; published checkpoints as columns."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import pytest

from tinyrs.cli import report as report_cli
from tinyrs.io import write_json
from tinyrs.report import collect, wilson_interval, write_report

ROOT = Path(__file__).resolve().parents[1]
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score interval written out (Wilson 1927), to check the library's."""
    p, z2 = successes / n, Z95 ** 2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return centre - half, centre + half


def cell(successes: int, n: int) -> str:
    low, high = wilson(successes, n)
    return f"{100 * successes / n:.2f} [{100 * low:.1f}, {100 * high:.1f}] n={n}"


def _entry(value: float | None, n: int) -> dict:
    return {"value": value, "n": n, "correct": 0 if value is None else round(value * n)}


def _metrics(task: str, family: str, values: dict[str, tuple[float | None, int]], primary="accuracy",
             skipped: dict | None = None, extra: dict | None = None, prompt_style: str = "tinyrs") -> dict:
    return {"task": task, "family": family, "primary": primary, "lenient": f"{primary}_lenient",
            "n": max(n for _, n in values.values()), "skipped": skipped or {}, "prompt_style": prompt_style,
            "metrics": {**{name: _entry(value, n) for name, (value, n) in values.items()}, **(extra or {})}}


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
                                               "precision@0.5_small": (None, 0), "precision@0.5_large": (0.5, 6)},
                        primary="precision@0.5",
                        extra={"mean_iou": {"value": 0.3, "n": 8},
                               "no_box_rate": {"value": 0.5, "n": 8, "count": 4}}))
    write_json(root / "sft" / "lhrs_bench.metrics.json",
               _metrics("lhrs_bench", "lhrs", {"accuracy": (0.6, 10), "accuracy_lenient": (0.7, 10),
                                               "accuracy_color": (0.75, 4)}))
    write_json(root / "sft" / "cls_a.shard-0-of-2.metrics.json", {"task": "ignored"})  # shard files are not results
    return root


@pytest.mark.parametrize("successes, n", [(25, 100), (1, 8), (0, 10), (10, 10), (2847, 3000)])
def test_wilson_interval_is_the_textbook_one(successes, n):
    assert wilson_interval(successes, n) == pytest.approx(wilson(successes, n), abs=1e-12)


def test_no_samples_no_interval():
    assert wilson_interval(0, 0) is None


def test_markdown_table_with_intervals_and_missing_combinations(eval_dir, tmp_path):
    text = write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    lines = text.splitlines()
    assert "| family | task | metric | base | base (lenient) | sft | sft (lenient) |" in lines
    assert f"| classification | cls_a | accuracy | {cell(25, 100)} | {cell(50, 100)} | {cell(50, 100)} | " \
           f"{cell(90, 100)} |" in lines
    assert f"| classification | cls_b | accuracy | {cell(30, 40)} | {cell(32, 40)} | — | — |" in lines
    assert "| classification | **mean** |  | 50.00 n=140 | 65.00 n=140 | — | — |" in lines  # sft lacks cls_b
    assert f"| grounding | rs_vg | precision@0.5 | — | — | {cell(1, 8)} | {cell(1, 4)} |" in lines  # n differ
    assert "- base/cls_b: image_missing 2" in lines
    assert {"- sft/cls_b: no metrics file", "- base/rs_vg: no metrics file"} <= set(lines)
    assert (tmp_path / "report" / "results.md").read_text() == text


def test_breakdowns_carry_their_n_and_interval(eval_dir, tmp_path):
    lines = write_report(eval_dir, ["base", "sft"], tmp_path / "report").splitlines()
    assert f"| lhrs_bench | accuracy_color | — | {cell(3, 4)} |" in lines          # LHRS-Bench per question type
    assert f"| rs_vg | precision@0.5_large | — | {cell(3, 6)} |" in lines        # grounding per box size
    assert "| rs_vg | precision@0.5_small | — | — n=0 |" in lines                  # an empty bucket: no value
    assert "| rs_vg | mean_iou | — | 30.00 n=8 |" in lines                         # no proportion: no interval
    assert f"| rs_vg | no_box_rate | — | {cell(4, 8)} |" in lines                  # a rate: from its count


def test_the_report_says_which_columns_compare_with_published_tables(eval_dir, tmp_path):
    text = write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    assert "**Comparable to published tables: the *(lenient)* columns.**" in text
    assert "95% Wilson interval" in text


def test_long_tables_keep_missing_combinations_and_carry_intervals(eval_dir, tmp_path):
    write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    frame = pd.read_parquet(tmp_path / "report" / "results.parquet")
    assert list(frame.columns) == ["stage", "task", "family", "metric", "value", "n", "correct", "ci_low", "ci_high"]
    assert frame.equals(pd.read_csv(tmp_path / "report" / "results.csv", dtype={"n": "Int64", "correct": "Int64"}))
    missing = frame[(frame.stage == "base") & (frame.task == "rs_vg")]
    assert set(missing.metric) == {"precision@0.5", "precision@0.5_lenient"}
    assert missing[["value", "n", "correct", "ci_low", "ci_high"]].isna().all().all()
    mean = frame[(frame.stage == "base") & (frame.task == "mean") & (frame.metric == "accuracy")].iloc[0]
    assert math.isclose(mean.value, 0.5) and mean.n == 140 and mean.family == "classification"
    assert pd.isna(mean.ci_low) and pd.isna(mean.correct)
    row = frame[(frame.stage == "sft") & (frame.task == "cls_a") & (frame.metric == "accuracy_lenient")].iloc[0]
    assert (row.value, row.n, row.correct) == (0.9, 100, 90)
    assert (row.ci_low, row.ci_high) == pytest.approx(wilson(90, 100))
    iou = frame[(frame.stage == "sft") & (frame.metric == "mean_iou")].iloc[0]
    assert iou.value == 0.3 and pd.isna(iou.ci_low)


def test_one_plot_per_family(eval_dir, tmp_path):
    write_report(eval_dir, ["base", "sft"], tmp_path / "report")
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pngs == ["classification.png", "grounding.png", "lhrs.png"]
    assert (tmp_path / "report" / "grounding.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_config_tasks_without_any_metrics_file_are_listed(eval_dir):
    expected = {"vqa_x": {"file": "x.json", "metric": "accuracy", "family": "vqa"}}
    results = collect(eval_dir, ["base", "sft"], expected)
    assert ("base", "vqa_x") in results.missing() and ("sft", "vqa_x") in results.missing()


def _cli(args: list[str]) -> int:
    parser = argparse.ArgumentParser()
    report_cli.register(parser.add_subparsers())
    parsed = parser.parse_args(["report", *args])
    return parsed.func(parsed)


def test_cli_prints_the_table_with_the_published_checkpoints_of_the_config(eval_dir, tmp_path, capsys):
    assert _cli(["--eval-dir", str(eval_dir), "--out-dir", str(tmp_path / "r"),
                 "--config", str(ROOT / "config.yaml")]) == 0
    printed = capsys.readouterr().out
    assert "| grpo (lenient) |" in printed and "- grpo/cls_aid: no metrics file" in printed
    assert "| TinyRS-R1 | TinyRS-R1 (lenient) |" in printed
    assert "- TinyRS-R1: `aybora/Qwen2-VL-TinyRS-R1@main`" in printed


def test_a_published_checkpoint_is_a_column_of_its_own(eval_dir, tmp_path, capsys):
    write_json(eval_dir / "TinyRS" / "cls_a.metrics.json",
               _metrics("cls_a", "classification", {"accuracy": (0.7, 100), "accuracy_lenient": (0.95, 100)}))
    assert _cli(["--eval-dir", str(eval_dir), "--out-dir", str(tmp_path / "r"), "--stages", "base,sft,TinyRS",
                 "--external", "TinyRS=aybora/Qwen2-VL-TinyRS@0123abc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "| family | task | metric | base | base (lenient) | sft | sft (lenient) | TinyRS | TinyRS (lenient) |" \
        in lines
    assert any(line.startswith("| classification | cls_a |") and line.endswith(f"| {cell(95, 100)} |")
               for line in lines)
    assert "- TinyRS: `aybora/Qwen2-VL-TinyRS@0123abc`, prompt style tinyrs" in lines
    frame = pd.read_csv(tmp_path / "r" / "results.csv")
    assert set(frame.stage) == {"base", "sft", "TinyRS"}


def test_a_malformed_external_column_is_a_config_error(eval_dir, tmp_path):
    from tinyrs.config import ConfigError

    with pytest.raises(ConfigError, match="NAME=REPO@REVISION"):
        _cli(["--eval-dir", str(eval_dir), "--out-dir", str(tmp_path / "r"), "--stages", "base",
              "--external", "TinyRS"])
