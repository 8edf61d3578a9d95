"""recipes/: config overlays that set another paper's settings (docs/recipes.md). GeoVLM-R1: REFERENCE.md §10."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dry_runs import planned_jobs, planned_resources
from test_workflow import make_site

from tinyrs.config import ConfigError, eval_tasks, load_config, stage_settings, stages
from tinyrs.grpo.rewards import REWARDS
from tinyrs.grpo.rewards.format import is_well_formed

GEOVLM = ["config.yaml", "recipes/geovlm-r1.yaml"]
PIXELS_448 = 448 * 448


@pytest.fixture(autouse=True)
def _in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


@pytest.fixture
def geovlm():
    return load_config(GEOVLM)


def test_geovlm_recipe_validates_and_has_only_sft_then_grpo(geovlm):
    assert list(stages(geovlm)) == ["sft", "grpo"]
    assert stages(geovlm)["sft"]["init"] == "base" and stages(geovlm)["grpo"]["init"] == "sft"
    assert geovlm["base_model"]["family"] == "qwen2.5-vl"
    assert geovlm["base_model"]["repo"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert geovlm["eval"]["stages"] == ["base", "sft", "grpo"]


def test_geovlm_stage_settings_carry_the_papers_values(geovlm):
    sft, grpo = stage_settings(geovlm, "sft"), stage_settings(geovlm, "grpo")
    assert (sft["kind"], sft["epochs"], sft["learning_rate"]) == ("sft", 2, 1e-5)
    assert (grpo["kind"], grpo["epochs"], grpo["learning_rate"]) == ("grpo", 2, 1e-6)
    assert (grpo["temperature"], grpo["beta"]) == (0.9, 0.04)
    for settings in (sft, grpo):
        assert settings["min_pixels"] == settings["max_pixels"] == PIXELS_448
        assert (settings["chat"]["reasoning_tag"], settings["chat"]["answer_tag"]) == ("think", "answer")
    # R = R_format + R_task: the format reward checks <think>/<answer>
    assert grpo["rewards"]["format_weight"] == 1.0
    assert is_well_formed("<think>two runways</think><answer>airport</answer>", "think", "answer")
    assert "<think> </think>" in grpo["chat"]["reasoning_system_prompt"]


def test_geovlm_rewards_by_task_are_the_papers(geovlm):
    by_task = stage_settings(geovlm, "grpo")["rewards"]["by_task"]
    assert by_task == {
        "classification": {"recall": 1.0}, "multilabel_classification": {"recall": 1.0},
        "referred_detection": {"detection": 1.0}, "damage_detection": {"detection": 1.0},
        "image_caption": {"levenshtein": 1.0}, "vqa": {"jaccard": 1.0},
        "region_caption": {"sbert": 1.0}, "grounded_caption": {"lmgr": 1.0}, "change_caption": {"hslr": 1.0}}
    assert all(set(mapping) <= set(REWARDS) for mapping in by_task.values())
    # no LLM judge in GeoVLM-R1: rows outside by_task fall back to rewards that need no API key
    by_type = stage_settings(geovlm, "grpo")["rewards"]["by_answer_type"]
    assert all(mapping.get("judge", 0) == 0 for mapping in by_type.values())


def test_geovlm_eval_tasks_use_the_papers_metrics(geovlm):
    tasks = eval_tasks(geovlm)
    assert {task["metric"] for task in tasks.values()} == {"accuracy", "multilabel", "detection_map", "caption",
                                                          "rouge", "jaccard"}
    assert "cls_aid" not in tasks and "lhrs_bench" not in tasks   # the TinyRS tasks (aybora's eval repo) dropped


def test_geovlm_data_sources_are_marked_to_be_set(geovlm):
    """GeoVLM-R1's data are not public: every source the recipe reads is an obvious placeholder."""
    for name in ("sft", "grpo", "eval"):
        assert geovlm["hub"]["datasets"][name]["repo"].startswith("TO-SET/")
    assert geovlm["data"]["lists"][stages(geovlm)["sft"]["data"]]["file"].startswith("TO-SET")
    assert all(task["file"].startswith("TO-SET") for task in eval_tasks(geovlm).values())


def test_every_value_the_paper_lacks_is_commented(repo_root):
    """The recipe says where each value comes from: the paper, or '# not in the paper'."""
    text = (repo_root / "recipes/geovlm-r1.yaml").read_text()
    assert text.count("not in the paper") >= 10
    for key in ("num_generations", "per_device_batch_size", "max_completion_length", "global_batch_size"):
        line = next(line for line in text.splitlines() if line.strip().startswith(key))
        assert "not in the paper" in line, line


def test_dropping_every_eval_task_is_an_error(tmp_path):
    overlay = tmp_path / "no_tasks.yaml"
    tasks = load_config(["config.yaml"])["eval"]["tasks"]
    overlay.write_text(yaml.safe_dump({"eval": {"tasks": {key: None for key in tasks}}}))
    with pytest.raises(ConfigError, match="eval.tasks"):
        load_config(["config.yaml", overlay])


def test_geovlm_dry_run_plans_sft_and_grpo_and_no_pretrain_or_cot(repo_root, tmp_path):
    workdir = tmp_path / "w"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    result = subprocess.run(["timeout", "-k", "10", "300", sys.executable, "-m", "snakemake", "-n", "-p", "--cores",
                             "1", "--configfile", *GEOVLM, "--config", f"workdir={workdir}"],
                            cwd=repo_root, env=env, capture_output=True, text=True)
    jobs = planned_jobs(result)
    assert jobs["sft"] == 1 and jobs["grpo"] == 1
    assert "pretrain" not in jobs and "cot" not in jobs
    assert jobs["eval_task"] == 3 * 7                      # base, sft, grpo x the 7 GeoVLM-R1 tasks
    assert f"--init {workdir}/models/sft/tinyrs_manifest.json --data {workdir}/hub/grpo" in result.stdout
    assert f"{workdir}/models/pretrain" not in result.stdout and f"{workdir}/models/cot" not in result.stdout


def test_geovlm_on_a_site_as_docs_say(repo_root, tmp_path, monkeypatch):
    """docs/recipes.md's command: `tinyrs run --profile <site> --configfile config.yaml recipes/geovlm-r1.yaml
    <site>/site.yaml -n`; the paper's GPU counts (8 for SFT, 4 for GRPO) reach the SLURM requests."""
    monkeypatch.setenv("PATH", f"{repo_root / 'tests' / 'slurm' / 'bin'}:{Path(sys.executable).parent}:"
                               f"{os.environ['PATH']}")
    site = make_site(repo_root, tmp_path, account="proj42", partition="batch")
    result = subprocess.run(["timeout", "-k", "10", "300", str(Path(sys.executable).parent / "tinyrs"), "run",
                             "--profile", str(site), "-n", "--configfile", *GEOVLM, str(site / "site.yaml"),
                             "--config", f"workdir={tmp_path}/w"], cwd=repo_root, capture_output=True, text=True)
    jobs = planned_jobs(result)
    assert jobs["sft"] == 1 and jobs["grpo"] == 1 and "pretrain" not in jobs and "cot" not in jobs
    gres = {rule: resources["gres"] for rule, resources in planned_resources(result) if rule in ("sft", "grpo")}
    assert gres == {"sft": "gpu:h100:8", "grpo": "gpu:h100:4"}
