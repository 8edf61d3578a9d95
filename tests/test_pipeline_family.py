"""The demo pipeline on the other base-model family: every stage of the TinyRS recipe, through Snakemake, with a
tiny Qwen2.5-VL (``base_model.family: qwen2.5-vl``) in place of the tiny Qwen2-VL.

tests/test_pipeline.py runs the full-size demo with Qwen2-VL and checks what it learns; this run is cut short
(a few optimizer steps per stage, a few eval samples per task) because what it checks is that the family goes
through the same code paths, stage by stage, to the report, not what it learns.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tinyrs.config import load_config

pytestmark = pytest.mark.slow
FAMILY = "qwen2.5-vl"
SHORT_RUN = {
    "base_model": {"family": FAMILY},
    "train_defaults": {"max_steps": 3},
    "grpo_defaults": {"max_steps": 2},
    "eval": {"max_samples": 3},
}


@pytest.fixture(scope="module")
def short_run(repo_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    overlay = root / "short-run.yaml"
    overlay.write_text(yaml.safe_dump(SHORT_RUN))
    configs = ["config.yaml", "profiles/demo/overrides.yaml", str(overlay)]
    workdir = root / "work"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    command = ["timeout", "-k", "30", "1200", sys.executable, "-m", "snakemake", "--profile", "profiles/demo",
               "--configfile", *configs, "--config", f"workdir={workdir}"]
    result = subprocess.run(command, cwd=repo_root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    return workdir, load_config([repo_root / path for path in configs])


def test_every_stage_trains_the_family_it_was_given(short_run):
    workdir, config = short_run
    for stage in config["stages"]:
        manifest = json.loads((workdir / "models" / stage / "tinyrs_manifest.json").read_text())
        assert manifest["stage"] == stage
        model_config = json.loads((workdir / "models" / stage / "config.json").read_text())
        assert model_config["model_type"] == "qwen2_5_vl"


def test_report_scores_every_stage_on_every_task(short_run):
    import pandas as pd

    workdir, config = short_run
    rows = pd.read_csv(workdir / "report" / "results.csv").to_dict("records")
    seen = {(row["stage"], row["task"]) for row in rows if row["task"] != "mean"}
    assert seen == {(stage, task) for stage in config["eval"]["stages"] for task in config["eval"]["tasks"]}
    headline = {row["n"] for row in rows if row["task"] != "mean" and row["metric"] in ("accuracy", "precision@0.5")}
    assert headline == {SHORT_RUN["eval"]["max_samples"]}
