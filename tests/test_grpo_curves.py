"""GRPO's reward curves: the total and each component per step, their quarters, and the report's section."""
from __future__ import annotations

import json

import pytest

from tinyrs.grpo.curves import reward_curve, reward_series
from tinyrs.grpo_report import moving_mean, write_grpo_section
from tinyrs.paths import GRPO_REWARDS_PLOT


def _log(steps: int) -> list[dict]:
    """TRL-shaped log history: box_iou only on even steps (odd steps' batches held no grounding sample)."""
    history = []
    for step in range(1, steps + 1):
        entry = {"step": step, "loss": 0.1, "reward": 1.0 + step / 100,
                 "rewards/format_reward/mean": 0.5, "rewards/format_reward/std": 0.1}
        if step % 2 == 0:
            entry["reward_components/box_iou/mean"] = step / steps
        history.append(entry)
    history.append({"step": steps, "train_runtime": 12.0})   # the closing entry has no reward
    return history


def test_series_keep_each_components_own_steps():
    series = reward_series(_log(8))
    assert [step for step, _ in series["total"]] == list(range(1, 9))
    assert series["box_iou"] == [(2, 0.25), (4, 0.5), (6, 0.75), (8, 1.0)]
    assert set(series) == {"total", "format", "box_iou"}   # std entries are not components


def test_curve_quarters_per_component():
    curve = reward_curve(_log(16))
    assert curve["logged_steps"] == 16
    assert curve["first_quarter_mean"] == pytest.approx((1.01 + 1.02 + 1.03 + 1.04) / 4)
    assert curve["last_quarter_mean"] == pytest.approx((1.13 + 1.14 + 1.15 + 1.16) / 4)
    box = curve["components"]["box_iou"]   # 8 points: 2/16 .. 16/16, quarters of 2
    assert box["logged_steps"] == 8
    assert box["first_quarter_mean"] == pytest.approx((2 + 4) / 16 / 2)
    assert box["last_quarter_mean"] == pytest.approx((14 + 16) / 16 / 2)
    assert curve["components"]["format"]["first_quarter_mean"] == curve["components"]["format"]["last_quarter_mean"]


def test_task_rewards_have_curves_of_their_own(tmp_path):
    """``reward_tasks/<task>/mean`` (rows with a ``task`` column) become ``tasks`` in the curve and the report."""
    history = _log(8)
    for entry in history[:-1]:
        entry["reward_tasks/vqa/mean"] = entry["step"] / 8
    curve = reward_curve(history)
    assert set(curve["tasks"]) == {"vqa"} and "vqa" not in curve["components"]
    assert curve["tasks"]["vqa"]["first_quarter_mean"] == pytest.approx(1.5 / 8)
    assert curve["tasks"]["vqa"]["last_quarter_mean"] == pytest.approx(7.5 / 8)
    log = tmp_path / "train_log.json"
    log.write_text(json.dumps(history), encoding="utf-8")
    assert "| task/vqa | 8 | 0.188 | 0.938 | +0.750 |" in write_grpo_section(log, tmp_path)


def test_curve_of_a_short_run_has_no_quarters():
    curve = reward_curve(_log(3))
    assert curve["logged_steps"] == 3 and "first_quarter_mean" not in curve
    assert curve["components"]["box_iou"] == {"logged_steps": 1}


def test_moving_mean():
    assert moving_mean([1, 2, 3, 4, 5], 2) == [1, 1.5, 2.5, 3.5, 4.5]
    assert moving_mean([4.0], 10) == [4.0]


def test_report_section_and_plot(tmp_path):
    log = tmp_path / "train_log.json"
    log.write_text(json.dumps(_log(16)), encoding="utf-8")
    text = write_grpo_section(log, tmp_path)
    assert (tmp_path / GRPO_REWARDS_PLOT).stat().st_size > 5_000
    assert "| box_iou | 8 | 0.188 | 0.938 | +0.750 |" in text
    assert "| total | 16 | 1.025 | 1.145 | +0.120 |" in text
