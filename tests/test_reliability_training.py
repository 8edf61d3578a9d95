"""Regression cases: failures that cost whole training runs, reproduced from the inputs that caused them.

- A torn checkpoint: SIGKILL while ``checkpoint-M/`` was being written left the folder without its weights;
  every rerun resumed from it and failed (``OSError ... no file named model.safetensors``), ignoring the
  complete ``checkpoint-N`` beside it. Here a real SIGKILL lands inside a real checkpoint save.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrs.config import load_config, settings_text, train_settings
from tinyrs.io import read_manifest

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = [REPO / "config.yaml", REPO / "profiles" / "demo" / "overrides.yaml"]


# Runs the tinyrs command line with a SIGKILL inside the save of one checkpoint, after its folder is made and
# before its weights are written: the state a node failure or the OOM killer leaves. argv[1] names the checkpoint.
KILLED_WHILE_SAVING = """
import os, signal, sys
import transformers.modeling_utils as modeling_utils
from tinyrs.cli import main

save_file = modeling_utils.safe_save_file

def killed_while_saving(tensors, filename, *args, **kwargs):
    if os.path.basename(os.path.dirname(filename)) == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    return save_file(tensors, filename, *args, **kwargs)

modeling_utils.safe_save_file = killed_while_saving
sys.exit(main(sys.argv[2:]))
"""


def run_tinyrs(args: list[str], killed_in: str | None = None) -> subprocess.CompletedProcess:
    launcher = ["-c", KILLED_WHILE_SAVING, killed_in] if killed_in else ["-m", "tinyrs.cli"]
    return subprocess.run([sys.executable, *launcher, *args], cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                          capture_output=True, text=True, timeout=600)


def assert_rerun_resumes_from_the_complete_checkpoint(args: list[str], checkpoints: Path, out: Path) -> None:
    """Steps 1-3, a checkpoint every step, SIGKILL while checkpoint-2 is saved; the rerun resumes from
    checkpoint-1, says checkpoint-2 is torn, and finishes."""
    killed = run_tinyrs(args, killed_in="checkpoint-2")
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert (checkpoints / "checkpoint-1" / "model.safetensors").is_file()
    assert (checkpoints / "checkpoint-2").is_dir() and not (checkpoints / "checkpoint-2" / "model.safetensors").exists()

    rerun = run_tinyrs(args)
    log = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, log[-5000:]
    assert f"resuming from {checkpoints / 'checkpoint-1'}\n" in rerun.stdout
    assert f"{checkpoints / 'checkpoint-2'} is incomplete" in rerun.stdout
    manifest = read_manifest(out)
    assert manifest["steps"] == 3 and manifest["resumed_from"] == str(checkpoints / "checkpoint-1")


def test_a_checkpoint_torn_by_sigkill_does_not_block_the_sft_rerun(tmp_path, tiny_model_dir, tiny_sft_manifest):
    settings = {**train_settings(load_config(DEMO_CONFIG), "sft"), "max_steps": 3, "save_steps": 1,
                "save_total_limit": 3, "per_device_batch_size": 4, "global_batch_size": 4, "report_to": []}
    (tmp_path / "sft.json").write_text(settings_text(settings))
    args = ["train", "--settings", str(tmp_path / "sft.json"), "--init", str(tiny_model_dir),
            "--data", str(tiny_sft_manifest), "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]
    assert_rerun_resumes_from_the_complete_checkpoint(args, tmp_path / "ckpt", tmp_path / "model")


@pytest.mark.images("sft", "grpo")
def test_a_checkpoint_torn_by_sigkill_does_not_block_the_grpo_rerun(tmp_path, tiny_model_dir):
    """GRPO resumes through the same ``runtime.last_checkpoint`` and writes the same completion marker."""
    from test_grpo_dataset import MAX_PIXELS, MIN_PIXELS, image, row, write_dataset

    from tinyrs.config import grpo_settings

    settings = {**grpo_settings(load_config(DEMO_CONFIG)), "max_steps": 3, "save_steps": 1, "save_total_limit": 3,
                "per_device_batch_size": 1, "num_generations": 2, "max_completion_length": 8, "report_to": [],
                "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    (tmp_path / "grpo.json").write_text(settings_text(settings))
    dataset = write_dataset(tmp_path / "dataset", [row(image(56, 56)) for _ in range(4)])
    args = ["grpo", "--settings", str(tmp_path / "grpo.json"), "--init", str(tiny_model_dir),
            "--dataset", dataset, "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]
    assert_rerun_resumes_from_the_complete_checkpoint(args, tmp_path / "ckpt", tmp_path / "model")
