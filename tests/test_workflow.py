"""The Snakemake workflow as a user meets it: the real config resolves fast, bad input is named clearly."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run(["timeout", "-k", "10", str(timeout), *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_dry_run_of_the_real_config_resolves_in_seconds(repo_root, tmp_path):
    started = time.time()
    result = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"workdir={tmp_path}/w"],
                 repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.time() - started < 60
    out = result.stdout + result.stderr
    for rule in ("fetch_dataset", "correct_list", "oversample_list", "base_model", "pretrain", "sft", "cot", "grpo",
                 "eval_task", "report"):
        assert rule in out, rule


def test_parsing_the_workflow_writes_nothing(repo_root, tmp_path):
    """A dry run (and a second instance the lock refuses) must not change any file: settings files are written by
    the stage_settings jobs, not while the Snakefile is read."""
    workdir = tmp_path / "w"
    result = run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/demo", "--config",
                  f"workdir={workdir}"], repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage_settings" in result.stdout and not workdir.exists()


def test_bad_config_key_stops_the_workflow_with_the_key_named(repo_root, tmp_path):
    overlay = tmp_path / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"grpo": {"num_generation": 8}}))
    result = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config.yaml",
                  str(overlay), "--config", f"workdir={tmp_path}/w"], repo_root)
    assert result.returncode != 0
    assert "unknown key 'grpo.num_generation'" in result.stdout + result.stderr


def test_missing_inputs_are_named(tmp_path):
    settings = tmp_path / "sft.json"
    settings.write_text("{}")
    result = run([str(BIN / "tinyrs"), "train", "--settings", str(tmp_path / "absent.json"), "--init",
                  str(tmp_path / "no-model"), "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o"),
                  "--checkpoints", str(tmp_path / "c")], tmp_path)
    assert result.returncode == 2
    assert "missing input" in result.stderr and "absent.json" in result.stderr
    result = run([str(BIN / "tinyrs"), "data", "correct", "--list", str(tmp_path / "absent-list.json"),
                  "--image-root", str(tmp_path), "--out-dir", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2 and "absent-list.json" in result.stderr
