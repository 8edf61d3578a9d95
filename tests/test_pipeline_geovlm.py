"""The GeoVLM-R1 recipe end to end on its demo world (`make demo RECIPE=geovlm-r1`): SFT then GRPO with the
recipe's task-aware rewards, every task evaluated, its reward logged over training and checked before and after
GRPO on the same prompts (the reward check), and GRPO keeping what SFT learned (demo-world seeds 0, 1 and 2:
docs/recipes.md, "The demo with this recipe"). That GRPO raises a task's reward, or beats SFT on a task metric, is
not asserted: on this tiny model the reward check finds no task reward changed beyond sampling noise (the training
curve's early-to-late rises, which an earlier version of this test asserted for the multi-label task, appear as
large at a learning rate of 1e-12: the order of the prompts, not learning)."""
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
TASKS = {"classification", "multilabel_classification", "referred_detection", "damage_detection",
         "image_caption", "vqa", "change_caption"}
# GRPO's mean task metric minus SFT's, over the seven tasks: +0.012, -0.005, -0.019 in the three seeds at 30 eval
# samples per task; seed 0 (the one run here) at the demo world's 50: +0.006
KEPT_MARGIN = 0.05

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


def test_grpo_logs_every_tasks_reward(geovlm_run):
    """Per task (the rows' `task` column), the task reward's mean over the first and the last quarter of GRPO's
    steps: every task has its curve, in the manifest and the report."""
    tasks = json.loads((geovlm_run / "models" / "grpo" / "tinyrs_manifest.json").read_text())["reward_curve"]["tasks"]
    assert set(tasks) == TASKS, tasks
    assert all("first_quarter_mean" in entry for entry in tasks.values()), tasks
    assert all(f"| task/{task} | " in (geovlm_run / "report" / "results.md").read_text() for task in tasks)


def test_the_reward_check_pairs_every_prompt_of_every_task(geovlm_run):
    """SFT and GRPO answer every row of the demo's GRPO data with the same seeds; the report compares each task's
    reward prompt by prompt."""
    from tinyrs.grpo.reward_check import compare_files

    before, after = (geovlm_run / "rewards" / f"{model}.json" for model in ("sft", "grpo"))
    rows = {row["reward"]: row for row in compare_files(before, after)}
    assert {name[len("task/"):] for name in rows if name.startswith("task/")} == TASKS
    assert rows["format"]["n"] == len(json.loads(before.read_text())["prompts"]) > 100
    assert sum(rows[f"task/{task}"]["n"] for task in TASKS) == rows["format"]["n"]
    section = (geovlm_run / "report" / "results.md").read_text()
    assert "## GRPO reward check: the same prompts before and after" in section
    assert all(f"| task/{task} | " in section.split("## GRPO reward check")[1] for task in TASKS)


def test_grpo_keeps_what_sft_learned(geovlm_run, repo_root):
    tasks = eval_tasks(load_config([repo_root / name for name in LAYERS]))
    gains = {task: metric(geovlm_run, "grpo", task) - metric(geovlm_run, "sft", task) for task in tasks}
    assert sum(gains.values()) / len(gains) > -KEPT_MARGIN, gains
