"""The whole demo pipeline through Snakemake (local executor), and what it must show: that it learns."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrs.config import load_config

pytestmark = pytest.mark.slow
STAGES = ["base", "pretrain", "sft", "cot", "grpo"]


def snakemake(repo: Path, workdir: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    command = ["timeout", "-k", "30", str(timeout), sys.executable, "-m", "snakemake", "--profile", "profiles/demo",
               "--config", f"workdir={workdir}", *args]
    return subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def demo_run(repo_root, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("demo") / "work"
    result = snakemake(repo_root, workdir)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir, result


def metric_rows(workdir: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(workdir / "report" / "results.csv").to_dict("records")


def test_every_stage_produced_a_complete_model(demo_run):
    workdir, _ = demo_run
    for stage in STAGES:
        manifest = json.loads((workdir / "models" / stage / "tinyrs_manifest.json").read_text())
        assert manifest["stage"] == stage


def test_report_covers_every_task_and_stage(demo_run, repo_root):
    workdir, result = demo_run
    tasks = load_config([repo_root / "config.yaml"])["eval"]["tasks"]
    rows = metric_rows(workdir)
    seen = {(r["stage"], r["task"]) for r in rows}
    assert seen == {(s, t) for s in STAGES for t in tasks}
    table = (workdir / "report" / "results.md").read_text()
    assert all(stage in table for stage in STAGES)


def classification_accuracy(workdir: Path, stage: str) -> float:
    scores = []
    for metrics_file in sorted((workdir / "eval" / stage).glob("cls_*.metrics.json")):
        scores.append(json.loads(metrics_file.read_text())["metrics"]["accuracy"]["value"])
    assert len(scores) == 5
    return sum(scores) / len(scores)


def test_sft_learns_classification(demo_run):
    workdir, _ = demo_run
    after_sft = classification_accuracy(workdir, "sft")
    base = classification_accuracy(workdir, "base")
    assert after_sft >= 0.8, after_sft
    assert after_sft > base


def test_grpo_reward_rises(demo_run):
    workdir, _ = demo_run
    curve = json.loads((workdir / "models" / "grpo" / "tinyrs_manifest.json").read_text())["reward_curve"]
    assert curve["last_quarter_mean"] > curve["first_quarter_mean"], curve
