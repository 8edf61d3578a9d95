"""DeepSpeed ZeRO-2 and ZeRO-3 keep the per-module learning rates and the cosine schedule (REFERENCE.md §3.3),
with two processes (torchrun, gloo on the CPU), and ZeRO-3 still writes a loadable model."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrs.config import load_config, stage_settings

pytestmark = pytest.mark.slow
RATES = {"llm": 1e-3, "merger": 5e-4, "vision": 1e-4}
STEPS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("zero", "padding_free"), [("zero2", False), ("zero3", True)])
def test_two_process_deepspeed_keeps_groups_and_schedule(zero, padding_free, repo_root, tmp_path, tiny_model_dir,
                                                         tiny_sft_manifest):
    config = load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"])
    settings = stage_settings(config, "sft")
    settings.update(deepspeed=zero, max_steps=STEPS, logging_steps=1, report_to=[], warmup_ratio=0.0,
                    lr_scheduler="cosine", per_device_batch_size=2, global_batch_size=4, max_pixels=56 * 56,
                    learning_rate=RATES["llm"], merger_lr=RATES["merger"], vision_lr=RATES["vision"],
                    weight_decay=0.1, save_steps=100, padding_free=padding_free)
    settings_file = tmp_path / "sft.json"
    settings_file.write_text(json.dumps(settings))
    out = tmp_path / "model"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    result = subprocess.run(
        ["timeout", "-k", "10", "900", sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-port", str(free_port()), "-m", "tinyrs.cli", "train", "--settings", str(settings_file),
         "--init", str(tiny_model_dir), "--data", str(tiny_sft_manifest), "--out", str(out),
         "--checkpoints", str(tmp_path / "ckpt")],
        env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]

    logged = [entry for entry in json.loads((out / "train_log.json").read_text()) if "lr/llm" in entry]
    assert [entry["step"] for entry in logged] == list(range(1, STEPS + 1))
    for entry in logged:
        # read after the scheduler stepped: the rate of the next step, cosine from the peak, no warmup
        factor = 0.5 * (1 + math.cos(math.pi * entry["step"] / STEPS))
        for family, rate in RATES.items():
            assert entry[f"lr/{family}"] == pytest.approx(rate * factor, rel=1e-6), (family, entry)
        assert entry["tokens_per_second"] > 0  # summed over both ranks at every log line
    manifest = json.loads((out / "tinyrs_manifest.json").read_text())
    assert manifest["steps"] == STEPS and manifest["tokens_per_second"] > 0

    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(out)
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
