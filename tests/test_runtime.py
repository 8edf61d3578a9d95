"""Resume and interruption: checkpoints belong to one run; a signal checkpoints and exits for a retry."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tinyrs import runtime
from tinyrs.config import load_config, stage_settings


def test_fingerprint_follows_settings_and_input_manifests(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "tinyrs_manifest.json").write_text('{"steps": 1}')
    first = runtime.run_fingerprint({"lr": 1}, model)
    assert runtime.run_fingerprint({"lr": 1}, model) == first
    assert runtime.run_fingerprint({"lr": 2}, model) != first
    (model / "tinyrs_manifest.json").write_text('{"steps": 2}')
    assert runtime.run_fingerprint({"lr": 1}, model) != first


def _checkpoint(checkpoints: Path, step: int, complete: bool = True) -> Path:
    path = checkpoints / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text("{}")
    if complete:
        runtime.mark_checkpoint_complete(path, step)
    return path


def test_checkpoints_of_another_run_are_discarded_not_resumed(tmp_path):
    checkpoints = tmp_path / "ckpt"
    assert runtime.last_checkpoint(checkpoints, "run-a") is None
    _checkpoint(checkpoints, 5)
    assert runtime.last_checkpoint(checkpoints, "run-a").endswith("checkpoint-5")
    assert runtime.last_checkpoint(checkpoints, "run-b") is None
    assert not (checkpoints / "checkpoint-5").exists()


def test_torn_checkpoints_are_named_and_removed_and_the_newest_complete_one_resumed(tmp_path, capsys):
    checkpoints = tmp_path / "ckpt"
    runtime.last_checkpoint(checkpoints, "run-a")
    _checkpoint(checkpoints, 10)
    complete = _checkpoint(checkpoints, 20)
    torn = _checkpoint(checkpoints, 30, complete=False)
    assert runtime.last_checkpoint(checkpoints, "run-a") == str(complete)
    assert f"{torn} is incomplete" in capsys.readouterr().out
    assert not torn.exists() and (checkpoints / "checkpoint-10").exists()


def _settings(repo_root: Path, tmp_path: Path) -> Path:
    config = load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"])
    settings = stage_settings(config, "sft")
    settings.update(max_steps=12, save_steps=3, save_total_limit=2, logging_steps=1, report_to=[],
                    per_device_batch_size=4, global_batch_size=4, max_pixels=112 * 112, warmup_ratio=0.1)
    path = tmp_path / "sft.json"
    path.write_text(json.dumps(settings))
    return path


def _train(settings: Path, init: Path, data: Path, out: Path, checkpoints: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "tinyrs.cli", "train", "--settings", str(settings), "--init",
                             str(init), "--data", str(data), "--out", str(out), "--checkpoints", str(checkpoints)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


@pytest.mark.slow
def test_signal_checkpoints_and_rerun_matches_uninterrupted_run(repo_root, tmp_path, tiny_model_dir,
                                                                 tiny_sft_manifest):
    """SLURM's pre-timeout signal: checkpoint, exit 75; the rerun resumes and ends where a clean run ends."""
    settings = _settings(repo_root, tmp_path)
    clean = _train(settings, tiny_model_dir, tiny_sft_manifest, tmp_path / "clean", tmp_path / "clean-ckpt")
    assert clean.wait(timeout=600) == 0, clean.stdout.read()[-3000:]

    interrupted = _train(settings, tiny_model_dir, tiny_sft_manifest, tmp_path / "out", tmp_path / "ckpt")
    deadline = time.time() + 300
    while not list((tmp_path / "ckpt").glob("checkpoint-3")) and time.time() < deadline:
        time.sleep(0.2)
    interrupted.send_signal(signal.SIGUSR1)
    assert interrupted.wait(timeout=300) == runtime.INTERRUPTED_EXIT
    saved = sorted(int(p.name.split("-")[1]) for p in (tmp_path / "ckpt").glob("checkpoint-*"))
    assert saved and saved[-1] < 12
    assert not (tmp_path / "out" / "tinyrs_manifest.json").exists()

    resumed = _train(settings, tiny_model_dir, tiny_sft_manifest, tmp_path / "out", tmp_path / "ckpt")
    log = resumed.stdout.read()
    assert resumed.wait(timeout=600) == 0, log[-3000:]
    assert f"resuming from {tmp_path / 'ckpt'}/checkpoint-{saved[-1]}" in log
    manifest = json.loads((tmp_path / "out" / "tinyrs_manifest.json").read_text())
    assert manifest["steps"] == 12 and manifest["resumed_from"].endswith(f"checkpoint-{saved[-1]}")
    clean_weights, resumed_weights = _weights(tmp_path / "clean"), _weights(tmp_path / "out")
    for name, tensor in clean_weights.items():
        # same data order and optimizer state after resume; float32 CPU arithmetic: agreement to 1e-5
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-5, atol=1e-5, msg=name)
