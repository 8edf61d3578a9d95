"""GRPO's reward check (tinyrs.grpo.reward_check): which prompts, how a prompt's samples are scored, and the paired
comparison of the model before GRPO with the model after it, checked against hand-computed values."""
from __future__ import annotations

import pytest

from tinyrs.config import load_config, typed_stage_settings
from tinyrs.grpo.reward_check import chosen_rows, compare, prompt_scores
from tinyrs.grpo.rewards import RewardSuite
from tinyrs.io import DataError


def sampled(accuracies: list[float], tasks: list[str | None], seed: int = 0) -> dict:
    prompts = [{"row": i, "task": task, "answer_type": "1", "completions": [],
                "rewards": {"format": 1.0, "accuracy": value, "total": 1.0 + value}}
               for i, (value, task) in enumerate(zip(accuracies, tasks))]
    return {"model": "m", "dataset": "d", "rows": list(range(len(prompts))), "samples": 8, "seed": seed,
            "temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_completion_length": 80, "skipped": {},
            "prompts": prompts}


def test_rows_are_a_seeded_choice_the_same_for_every_model():
    assert chosen_rows(10, 4, 0) == chosen_rows(10, 4, 0)
    assert len(set(chosen_rows(10, 4, 0))) == 4 and set(chosen_rows(10, 4, 0)) <= set(range(10))
    assert chosen_rows(10, 4, 0) != chosen_rows(10, 4, 1)
    assert chosen_rows(5, 64, 3) == [0, 1, 2, 3, 4]


def test_compare_pairs_prompts_with_a_t_interval():
    """Changes 0.1, 0.3, 0.2: mean 0.2, sd 0.1, t(0.975, 2) = 4.3027: 0.2 -/+ 0.24841. The two vqa prompts:
    0.1, 0.3: mean 0.2, sd 0.14142, t(0.975, 1) = 12.7062: 0.2 -/+ 1.27062. Format never moves: no interval."""
    before = sampled([0.2, 0.4, 0.1], ["vqa", "vqa", None])
    after = sampled([0.3, 0.7, 0.3], ["vqa", "vqa", None])
    rows = {row["reward"]: row for row in compare(before, after)}
    assert set(rows) == {"format", "accuracy", "total", "task/vqa"}
    accuracy = rows["accuracy"]
    assert (accuracy["n"], accuracy["before"], accuracy["after"]) == (3, pytest.approx(0.7 / 3), pytest.approx(1.3 / 3))
    assert accuracy["change"] == pytest.approx(0.2)
    assert accuracy["low"] == pytest.approx(-0.048414, abs=1e-5)
    assert accuracy["high"] == pytest.approx(0.448414, abs=1e-5)
    vqa = rows["task/vqa"]
    assert vqa["n"] == 2 and vqa["change"] == pytest.approx(0.2)
    assert (vqa["low"], vqa["high"]) == (pytest.approx(-1.070620, abs=1e-5), pytest.approx(1.470620, abs=1e-5))
    assert rows["format"]["change"] == 0 and rows["format"]["low"] is None


def test_compare_refuses_samples_that_do_not_pair():
    with pytest.raises(DataError, match="'seed' differs"):
        compare(sampled([0.1], [None], seed=0), sampled([0.1], [None], seed=1), "before.json vs after.json")


def test_a_prompt_scores_the_mean_of_its_samples_by_the_stage_rewards(repo_root):
    """A closed question answered right once and wrong once, well formed both times: format 1, closed 0.5."""
    config = load_config([repo_root / "config.yaml", repo_root / "profiles" / "demo" / "overrides.yaml"])
    suite = RewardSuite(typed_stage_settings(config, "grpo"))
    texts = ["<reasoning>a road</reasoning><answer>yes</answer>", "<reasoning>none</reasoning><answer>no</answer>"]
    scores = prompt_scores(suite, texts, ["1", "yes", "Is there a road?"], None, "test")
    assert scores == {"format": 1.0, "closed": 0.5, "accuracy": 0.5, "total": 1.5}


def test_the_report_shows_each_rewards_change_and_interval(tmp_path):
    import json

    from tinyrs.grpo_report import write_grpo_section

    files = []
    for name, values in (("cot", [0.2, 0.4, 0.1]), ("grpo", [0.3, 0.7, 0.3])):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(sampled(values, ["vqa", "vqa", None])))
    (tmp_path / "train_log.json").write_text(json.dumps([{"step": 1, "reward": 1.0, "rewards/format_reward/mean": 1.0}]))
    text = write_grpo_section(tmp_path / "train_log.json", tmp_path, [str(f) for f in files])
    section = text[text.index("## GRPO reward check: the same prompts before and after"):]
    assert "(cot vs grpo)" in section
    assert "| accuracy | 3 | 0.233 | 0.433 | +0.200 | [-0.048, +0.448] |" in section
    assert "| format | 3 | 1.000 | 1.000 | +0.000 | — |" in section


def test_the_report_refuses_a_reward_check_without_the_grpo_log(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tinyrs.cli", "report", "--stages", "grpo", "--eval-dir",
                             str(tmp_path), "--out-dir", str(tmp_path), "--reward-check", "a.json", "b.json"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "give its GRPO log too" in result.stderr
    assert "Traceback" not in result.stderr
