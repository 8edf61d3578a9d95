"""The whole demo pipeline through Snakemake (local executor), and what it must show: that it learns."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dry_runs import planned_jobs

from tinyrs.config import load_config

pytestmark = pytest.mark.slow
STAGES = ["base", "pretrain", "sft", "cot", "grpo"]
PUBLISHED = "published-demo"  # the demo's stand-in for a published checkpoint: a copy of its base model


def snakemake(repo: Path, workdir: Path, *args: str, timeout: int = 1500,
              profile: str = "profiles/demo") -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    command = ["timeout", "-k", "30", str(timeout), sys.executable, "-m", "snakemake", "--profile", profile,
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
    seen = {(r["stage"], r["task"]) for r in rows if r["task"] != "mean"}
    assert seen == {(s, t) for s in [*STAGES, PUBLISHED] for t in tasks}
    table = (workdir / "report" / "results.md").read_text()
    assert all(stage in table for stage in [*STAGES, PUBLISHED])
    assert f"- {PUBLISHED}: `tinyrs-demo/Qwen2-VL-tiny-published@main`" in table


def test_a_published_checkpoint_scores_like_the_same_model_as_a_stage(demo_run):
    """The stand-in went through the mirror and `tinyrs model fetch` and is the base model's weights with the same
    prompt style: the harness must give it the base column's numbers (within 2 samples, for CPU arithmetic)."""
    workdir, _ = demo_run
    base_files = sorted((workdir / "eval" / "base").glob("*.metrics.json"))
    assert len(base_files) == 12
    for base_file in base_files:
        base = json.loads(base_file.read_text())
        published = json.loads((workdir / "eval" / PUBLISHED / base_file.name).read_text())
        assert published["n"] == base["n"] and published["prompt_style"] == base["prompt_style"] == "plain"
        value, reference = published["metrics"][base["primary"]]["value"], base["metrics"][base["primary"]]["value"]
        assert value == pytest.approx(reference, abs=2 / base["n"]), base_file.name


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


# GRPO's reward check (CoT -> GRPO: every prompt of the GRPO data, the same sampling seeds; bench/README.md), the
# open-ended (SBERT) reward's change and its 95% interval on demo-world seeds 0, 1, 2: +0.048 [+0.017, +0.078],
# +0.171 [+0.103, +0.238], +0.019 [-0.010, +0.048]. At a learning rate of 1e-12 the change is exactly 0.
OPEN_ENDED_GAIN = 0.01


def test_grpo_raises_the_open_ended_reward_on_the_same_prompts(demo_run):
    """The training curve's rise is no evidence (at lr 1e-12 it rose as much: the prompts' order); the reward check
    pairs CoT's and GRPO's samples of the same prompts, and the reward GRPO raised in every measured seed is the
    open-ended one. Closed (+0.000, +0.055, +0.016) and box IoU (+0.002, +0.003, +0.000) are not asserted."""
    from tinyrs.grpo.reward_check import compare_files

    workdir, _ = demo_run
    rows = {row["reward"]: row for row in compare_files(workdir / "rewards" / "cot.json",
                                                        workdir / "rewards" / "grpo.json")}
    assert {"format", "closed", "box_iou", "sbert", "total"} <= set(rows), rows
    assert rows["format"]["n"] == 96, rows["format"]
    assert rows["sbert"]["change"] > OPEN_ENDED_GAIN, rows["sbert"]


def test_report_shows_each_grpo_reward_over_training(demo_run):
    """The total can rise through format alone: the report has each component's curve (issue: box IoU must be seen)."""
    workdir, _ = demo_run
    text = (workdir / "report" / "results.md").read_text(encoding="utf-8")
    section = text[text.index("## GRPO rewards over training"):]
    for name in ("total", "format", "accuracy", "box_iou", "closed"):
        assert f"\n| {name} | " in section, name
    assert (workdir / "report" / "grpo_rewards.png").stat().st_size > 10_000
    manifest = json.loads((workdir / "models" / "grpo" / "tinyrs_manifest.json").read_text())
    assert {"format", "box_iou", "closed"} <= set(manifest["reward_curve"]["components"])
    assert "## GRPO reward check: the same prompts before and after" in section


def test_grpo_completions_can_hold_every_reasoned_answer_of_the_cot_list(demo_run):
    """Once they could not: at 48 tokens every grounding completion (52-57 tokens reasoned) was cut before its
    <answer>, so the box-IoU reward was 0 whatever the box, and GRPO could not learn grounding at all."""
    from transformers import AutoTokenizer

    workdir, _ = demo_run
    budget = json.loads((workdir / "settings" / "grpo.json").read_text())["max_completion_length"]
    tokenizer = AutoTokenizer.from_pretrained(workdir / "models" / "cot")
    records = json.loads((workdir / "hub" / "sft" / "list_sft_reasoning.json").read_text())
    longest = max(len(tokenizer(record["conversations"][1]["value"] + "<|im_end|>")["input_ids"])
                  for record in records)
    assert longest <= budget, (longest, budget)


def test_cot_keeps_what_sft_learned(demo_run):
    """Issue #14: CoT-SFT keeps SFT's classification within 10 points. Once it lost 36 (98.4 -> 62.4): the tiny model,
    under-trained on the long reasoning answers, garbled the reasoning and the answer followed it. Measured with the
    demo's settings on demo-world seeds 0, 1, 2 (SFT -> CoT): 94.4 -> 98.4, 100 -> 100, 99.6 -> 99.2. With the vision
    tower and merger at CoT's 2e-3 too, seed 1 fell 100 -> 75.2: the LLM reasoned well about scenes it misread."""
    workdir, _ = demo_run
    assert classification_accuracy(workdir, "cot") >= classification_accuracy(workdir, "sft") - 0.1


def test_grpo_keeps_what_cot_learned(demo_run):
    """A rising reward is not enough: GRPO once raised it by collapsing to short answers (classification 0). Issue
    #14: within 5 points of CoT. Measured on demo-world seeds 0, 1, 2 (CoT -> GRPO): 98.4 -> 98.4, 100 -> 100,
    99.2 -> 99.2."""
    workdir, _ = demo_run
    assert classification_accuracy(workdir, "grpo") >= classification_accuracy(workdir, "cot") - 0.05


def test_snakemake_report_is_one_html_file_with_the_plots(demo_run, repo_root, tmp_path):
    workdir, _ = demo_run
    html = tmp_path / "report.html"
    result = snakemake(repo_root, workdir, "--report", str(html))
    assert result.returncode == 0, result.stderr[-3000:]
    text = html.read_text(errors="replace")
    assert html.stat().st_size > 10_000 and "classification.png" in text


# --- partial reruns (dry runs on the finished demo, then one real interrupted stage) -----------------------------

def test_until_sft_runs_nothing_after_sft(repo_root, tmp_path):
    jobs = planned_jobs(snakemake(repo_root, tmp_path / "fresh", "-n", "--until", "sft"))
    assert {"pretrain", "sft", "base_model"} <= set(jobs)
    assert not set(jobs) & {"cot", "grpo", "eval_stage", "report", "external_model", "demo_published_model"}


def test_finished_demo_has_nothing_left_to_do(demo_run, repo_root):
    workdir, _ = demo_run
    assert planned_jobs(snakemake(repo_root, workdir, "-n")) == {}


def test_forcerun_grpo_reruns_grpo_and_its_eval_only(demo_run, repo_root):
    workdir, _ = demo_run
    jobs = planned_jobs(snakemake(repo_root, workdir, "-n", "--forcerun", "grpo"))
    assert jobs == {"grpo": 1, "eval_stage": 1, "reward_check": 1, "report": 1, "all": 1}


def test_changed_grpo_parameter_reruns_grpo_and_downstream_only(demo_run, repo_root, tmp_path):
    """The plan rewrites GRPO's settings and reruns what follows; the dry run itself writes nothing (a dry run
    with an overlay once rewrote the settings file a running stage was about to read)."""
    workdir, _ = demo_run
    settings = workdir / "settings" / "grpo.json"
    before, mtime = settings.read_text(), settings.stat().st_mtime_ns
    overlay = tmp_path / "beta.yaml"
    overlay.write_text("grpo_defaults: {beta: 0.1}\n")  # the demo runs with 0.04
    jobs = planned_jobs(snakemake(repo_root, workdir, "-n", "--configfile", "config.yaml",
                                  "profiles/demo/overrides.yaml", str(overlay)))
    # the reward check's settings hold GRPO's: both of its models are sampled again
    assert jobs == {"stage_settings": 2, "grpo": 1, "reward_check": 2, "eval_stage": 1, "report": 1, "all": 1}
    assert (settings.read_text(), settings.stat().st_mtime_ns) == (before, mtime)


def test_killed_stage_resumes_from_its_checkpoint(demo_run, repo_root):
    """A training job killed mid-stage (SLURM's SIGTERM) is resumed by the rerun, not started over."""
    import psutil

    workdir, _ = demo_run
    log = workdir / "logs" / "train_pretrain.log"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/demo", "--config", f"workdir={workdir}",
               "--forcerun", "pretrain", "--until", "pretrain"]
    log.unlink()  # the finished run's log already shows progress: wait for this run's
    first = subprocess.Popen(command, cwd=repo_root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    trainer = None
    while time.time() < deadline and trainer is None:
        time.sleep(0.5)
        progressed = log.exists() and "| 10/" in log.read_text(errors="replace")
        trainers = [p for p in psutil.Process(first.pid).children(recursive=True)
                    if "python" in p.cmdline()[0] and p.cmdline()[2:4] == ["train", "--settings"]]
        if progressed and trainers:
            trainer = trainers[-1]
    assert trainer is not None, "pretrain never got going"
    trainer.send_signal(signal.SIGTERM)
    assert first.wait(timeout=300) != 0
    assert "signal 15 received; checkpoint saved" in log.read_text(errors="replace")
    assert not (workdir / "models" / "pretrain" / "tinyrs_manifest.json").exists()

    second = subprocess.run(command[:-4] + ["--until", "pretrain"], cwd=repo_root, env=env, capture_output=True,
                            text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    text = log.read_text(errors="replace")
    assert "resuming from" in text and "checkpoint-" in text
    manifest = json.loads((workdir / "models" / "pretrain" / "tinyrs_manifest.json").read_text())
    assert manifest["resumed_from"] is not None
