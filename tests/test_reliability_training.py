"""Regression cases: failures that cost whole training runs, reproduced from the inputs that caused them.

- A torn checkpoint: SIGKILL while ``checkpoint-M/`` was being written left the folder without its weights;
  every rerun resumed from it and failed (``OSError ... no file named model.safetensors``), ignoring the
  complete ``checkpoint-N`` beside it. Here a real SIGKILL lands inside a real checkpoint save.
- A corrupt image: under ``check_images: exists`` the data stage keeps random-byte, empty and truncated
  image files; training on one crashed the run with a PIL traceback naming the file but not the record.
  Here the data stages make the manifest, and SFT, the GRPO dataset and eval each meet all four kinds.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyrs.config import load_config, settings_text, stage_settings, typed_eval_settings
from tinyrs.io import read_json, read_manifest

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = [REPO / "config.yaml", REPO / "profiles" / "demo" / "overrides.yaml"]


def corrupt_images() -> dict[str, bytes]:
    """The undecodable files seen in real image folders, by file name: random bytes, 0 bytes, and a JPEG
    and a PNG cut off half way (an interrupted download or copy)."""
    pixels = np.random.default_rng(0).integers(0, 256, (112, 112, 3)).astype("uint8")
    encoded = {}
    for kind in ("JPEG", "PNG"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, kind)
        encoded[kind] = buffer.getvalue()
    return {
        "random.jpg": np.random.default_rng(1).bytes(2000),
        "empty.jpg": b"",
        "truncated.jpg": encoded["JPEG"][: len(encoded["JPEG"]) // 2],
        "truncated.png": encoded["PNG"][: len(encoded["PNG"]) // 2],
    }


CORRUPT = corrupt_images()
GOOD_IMAGES = 8


def classification(image: str, label: str, number: int) -> dict:
    return {"id": number, "source_dataset": "UCM", "image": image, "conversations": [
        {"from": "human", "value": "<image>\n{CLS} What is the category of this image?"},
        {"from": "gpt", "value": label}]}


@pytest.fixture(scope="module")
def manifest_with_corrupt_images(tmp_path_factory) -> Path:
    """Decodable images and the four corrupt ones, corrected with ``check_images: exists`` and turned into a
    Parquet manifest by the real data stages: every record is kept (the files exist)."""
    from tinyrs.data.correct import correct_list
    from tinyrs.data.manifest import open_manifest
    from tinyrs.data.oversample import oversample

    root = tmp_path_factory.mktemp("corrupt_sft")
    (root / "UCM").mkdir()
    names = [f"{number}.jpg" for number in range(GOOD_IMAGES)]
    for number, name in enumerate(names):
        Image.new("RGB", (112, 112), (30 * number, 60, 200)).save(root / "UCM" / name)
    for name, content in CORRUPT.items():
        (root / "UCM" / name).write_bytes(content)
    names += list(CORRUPT)
    (root / "list.json").write_text(json.dumps([classification(name, "water", n) for n, name in enumerate(names)]))
    correct_list(root / "list.json", root, "exists", root / "out" / "corrected", workers=1)
    oversample(root / "out" / "corrected", None, 0, root / "out")
    manifest = root / "out" / "manifest.parquet"
    assert len(open_manifest(manifest)) == len(names)
    return manifest


def test_corrupt_images_do_not_kill_sft_training(tmp_path, tiny_model_dir, manifest_with_corrupt_images, capsys):
    """Every corrupt image is a counted skip, named with its record once in the log and in the model manifest."""
    from tinyrs.config import typed_stage_settings
    from tinyrs.sft.trainer import train

    settings = dataclasses.replace(typed_stage_settings(load_config(DEMO_CONFIG), "sft"), epochs=2, max_steps=-1,
                                   per_device_batch_size=4, global_batch_size=4, report_to=[], dataloader_workers=1)
    out = tmp_path / "model"
    train(settings, str(tiny_model_dir), str(manifest_with_corrupt_images), str(out), str(tmp_path / "ckpt"))
    manifest = read_manifest(out)
    records = len(CORRUPT) + GOOD_IMAGES
    assert manifest["steps"] == 2 * records // 4
    assert manifest["skipped_unreadable_image"] == 2 * len(CORRUPT)  # each corrupt record, in both epochs
    listed = {Path(entry["path"]).name: entry for entry in manifest["unreadable_images"]}
    assert set(listed) == set(CORRUPT)
    assert sorted(entry["index"] for entry in listed.values()) == list(range(GOOD_IMAGES, records))
    assert all(entry["source"] == "UCM" and entry["error"] for entry in listed.values())
    log = capsys.readouterr().out
    for name, entry in listed.items():
        lines = [line for line in log.splitlines() if entry["path"] in line]
        assert len(lines) == 1 and f"record {entry['index']}" in lines[0], (name, lines)


def test_corrupt_images_are_counted_skips_of_the_grpo_dataset(tmp_path, tiny_model_dir):
    from test_grpo_dataset import MAX_PIXELS, MIN_PIXELS, image, row, write_dataset

    from tinyrs.config import typed_stage_settings
    from tinyrs.grpo.dataset import load_grpo_dataset
    from tinyrs.model.load import load_processor

    settings = dataclasses.replace(typed_stage_settings(load_config([REPO / "config.yaml"]), "grpo"),
                                   min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    corrupt_rows = [row({"bytes": content, "path": name}) for name, content in CORRUPT.items()]
    path = write_dataset(tmp_path / "grpo", [row(image(56, 56)), *corrupt_rows])
    dataset, report = load_grpo_dataset(path, settings, load_processor(tiny_model_dir, MIN_PIXELS, MAX_PIXELS))
    assert (report["rows"], report["kept"], len(dataset)) == (1 + len(CORRUPT), 1, 1)
    assert report["skipped"] == {"image_unreadable": len(CORRUPT)}
    assert [(entry["row"], entry["path"]) for entry in report["unreadable_images"]] == [
        (number, name) for number, name in enumerate(CORRUPT, start=1)]
    assert all(entry["error"] for entry in report["unreadable_images"])


def test_corrupt_images_are_counted_skips_in_eval_metrics(tmp_path, capsys):
    from test_eval_runner import TASKS

    from tinyrs.eval.backends.base import Backend
    from tinyrs.eval.runner import run_eval

    class Forest(Backend):
        name = "fixed"

        def generate(self, batch):
            return ["forest"] * len(batch)

    root = tmp_path / "data"
    (root / "cls").mkdir(parents=True)
    Image.new("RGB", (48, 40), (20, 110, 30)).save(root / "cls" / "good.png")
    for name, content in CORRUPT.items():
        (root / "cls" / name).write_bytes(content)
    names = ["good.png", *CORRUPT]
    (root / "cls.json").write_text(json.dumps([{"image": name, "conversations": [
        {"from": "human", "value": "What is the scene?"}, {"from": "gpt", "value": "forest"}]} for name in names]))
    settings = dataclasses.replace(typed_eval_settings(load_config([REPO / "config.yaml"]), "sft"),
                                   tasks={"cls": TASKS["cls"]}, batch_size=2)
    document = run_eval(settings, tmp_path / "model", root, tmp_path / "out", backend=Forest())["cls"]
    assert document["n"] == 1 and document == read_json(tmp_path / "out" / "cls.metrics.json")
    assert document["skipped"] == {"image_unreadable": len(CORRUPT)}
    skipped = document["skipped_records"]
    assert [(skip["index"], Path(skip["detail"].split(":")[0]).name) for skip in skipped] == [
        (number, name) for number, name in enumerate(CORRUPT, start=1)]
    log = capsys.readouterr().out
    assert all(f"sample {number}" in log and name in log for number, name in enumerate(CORRUPT, start=1))


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


def kill_while_saving_checkpoint_2(args: list[str], checkpoints: Path) -> None:
    """Run with a checkpoint every step and SIGKILL while checkpoint-2 is being saved."""
    killed = run_tinyrs(args, killed_in="checkpoint-2")
    assert killed.returncode == -signal.SIGKILL, killed.stdout[-3000:] + killed.stderr[-3000:]
    assert (checkpoints / "checkpoint-1" / "model.safetensors").is_file()
    assert (checkpoints / "checkpoint-2").is_dir() and not (checkpoints / "checkpoint-2" / "model.safetensors").exists()


def rerun_from_checkpoint_1(args: list[str], checkpoints: Path, out: Path) -> dict:
    """Rerun after ``kill_while_saving_checkpoint_2``: it resumes from checkpoint-1, names checkpoint-2 as torn,
    and finishes; returns the model manifest."""
    rerun = run_tinyrs(args)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-5000:]
    assert f"resuming from {checkpoints / 'checkpoint-1'}\n" in rerun.stdout
    assert f"{checkpoints / 'checkpoint-2'} is incomplete" in rerun.stdout
    manifest = read_manifest(out)
    assert manifest["resumed_from"] == str(checkpoints / "checkpoint-1")
    return manifest


def sft_args(settings: dict, tmp_path: Path, init: Path, data: Path) -> list[str]:
    (tmp_path / "sft.json").write_text(settings_text(settings))
    return ["train", "--settings", str(tmp_path / "sft.json"), "--init", str(init), "--data", str(data),
            "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]


def test_a_checkpoint_torn_by_sigkill_does_not_block_the_sft_rerun(tmp_path, tiny_model_dir, tiny_sft_manifest):
    settings = {**stage_settings(load_config(DEMO_CONFIG), "sft"), "max_steps": 3, "save_steps": 1,
                "save_total_limit": 3, "per_device_batch_size": 4, "global_batch_size": 4, "report_to": []}
    args = sft_args(settings, tmp_path, tiny_model_dir, tiny_sft_manifest)
    kill_while_saving_checkpoint_2(args, tmp_path / "ckpt")
    assert rerun_from_checkpoint_1(args, tmp_path / "ckpt", tmp_path / "model")["steps"] == 3


def test_skips_before_an_interruption_reach_the_rerun_manifest(tmp_path, tiny_model_dir, manifest_with_corrupt_images):
    """A resumed run's model manifest counts the skips of the whole run, not only of the steps after the resume."""
    from tinyrs.sft.trainer import SKIPS_FILE

    settings = {**stage_settings(load_config(DEMO_CONFIG), "sft"), "epochs": 2, "max_steps": -1, "save_steps": 1,
                "save_total_limit": 3, "per_device_batch_size": 4, "global_batch_size": 4, "report_to": []}
    args = sft_args(settings, tmp_path, tiny_model_dir, manifest_with_corrupt_images)
    kill_while_saving_checkpoint_2(args, tmp_path / "ckpt")
    assert read_json(tmp_path / "ckpt" / "checkpoint-1" / SKIPS_FILE)["skipped_unreadable_image"] > 0
    manifest = rerun_from_checkpoint_1(args, tmp_path / "ckpt", tmp_path / "model")
    assert manifest["skipped_unreadable_image"] == 2 * len(CORRUPT)
    assert {Path(entry["path"]).name for entry in manifest["unreadable_images"]} == set(CORRUPT)


@pytest.mark.images("sft", "grpo")
def test_a_checkpoint_torn_by_sigkill_does_not_block_the_grpo_rerun(tmp_path, tiny_model_dir):
    """GRPO resumes through the same ``runtime.last_checkpoint`` and writes the same completion marker."""
    from test_grpo_dataset import MAX_PIXELS, MIN_PIXELS, image, row, write_dataset

    from tinyrs.config import stage_settings

    settings = {**stage_settings(load_config(DEMO_CONFIG), "grpo"), "max_steps": 3, "save_steps": 1, "save_total_limit": 3,
                "per_device_batch_size": 1, "num_generations": 2, "max_completion_length": 8, "report_to": [],
                "min_pixels": MIN_PIXELS, "max_pixels": MAX_PIXELS}
    (tmp_path / "grpo.json").write_text(settings_text(settings))
    dataset = write_dataset(tmp_path / "dataset", [row(image(56, 56)) for _ in range(4)])
    args = ["grpo", "--settings", str(tmp_path / "grpo.json"), "--init", str(tiny_model_dir),
            "--dataset", dataset, "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]
    kill_while_saving_checkpoint_2(args, tmp_path / "ckpt")
    assert rerun_from_checkpoint_1(args, tmp_path / "ckpt", tmp_path / "model")["steps"] == 3
