"""The GeoVLM-R1 recipe end to end on its demo world (`make demo RECIPE=geovlm-r1`): SFT then GRPO with the
recipe's task-aware rewards, every task evaluated, and what it must show: GRPO raises the task rewards and a task
metric over SFT. Margins: docs/recipes.md ("The demo with this recipe") gives the runs they were set from."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import snakemake

from tinyrs.config import eval_tasks, load_config

pytestmark = pytest.mark.slow
PROFILE = "profiles/demo-geovlm-r1"
LAYERS = ["config.yaml", "recipes/geovlm-r1.yaml", f"{PROFILE}/overrides.yaml"]
STAGES = ["base", "sft", "grpo"]


@pytest.fixture(scope="module")
def geovlm_run(repo_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo_geovlm") / "work"
    result = snakemake(repo_root, workdir, profile=PROFILE, timeout=900)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir


def metric(workdir: Path, stage: str, task: str) -> float:
    document = json.loads((workdir / "eval" / stage / f"{task}.metrics.json").read_text())
    return document["metrics"][document["primary"]]["value"]


def test_every_task_is_evaluated_at_every_stage(geovlm_run, repo_root):
    import pandas as pd

    tasks = eval_tasks(load_config([repo_root / name for name in LAYERS]))
    rows = pd.read_csv(geovlm_run / "report" / "results.csv").to_dict("records")
    assert {(r["stage"], r["task"]) for r in rows if r["task"] != "mean"} == {(s, t) for s in STAGES for t in tasks}
    assert "## GRPO rewards over training" in (geovlm_run / "report" / "results.md").read_text()


def test_grpo_raises_the_task_rewards(geovlm_run):
    """Per task (the rows' `task` column), the task reward's mean over the last quarter of GRPO's steps against the
    first: higher on average over the tasks, and for most tasks."""
    curve = json.loads((geovlm_run / "models" / "grpo" / "tinyrs_manifest.json").read_text())["reward_curve"]
    tasks = curve["tasks"]
    assert len(tasks) == 7, tasks
    gains = {task: entry["last_quarter_mean"] - entry["first_quarter_mean"] for task, entry in tasks.items()}
    assert sum(gains.values()) / len(gains) > MEAN_TASK_GAIN, gains
    assert sum(gain > 0 for gain in gains.values()) >= TASKS_RISING, gains


def test_grpo_beats_sft_on_a_task_metric(geovlm_run, repo_root):
    tasks = eval_tasks(load_config([repo_root / name for name in LAYERS]))
    gains = {task: metric(geovlm_run, "grpo", task) - metric(geovlm_run, "sft", task) for task in tasks}
    assert max(gains.values()) > METRIC_GAIN, gains
