"""Shared fixtures: the repository root and tiny models of each base-model family, built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Which image's environment this run is in (`make test` runs the suite once per image, see the Makefile). The
# development venv holds the sft image's pins, so a run without the variable is the sft image's.
TEST_IMAGE = os.environ.get("TINYRS_TESTENV", "sft")


def pytest_collection_modifyitems(config, items):
    """Keep a test marked ``images(...)`` only in the environments of the images it names."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("images")
        (kept if marker is None or TEST_IMAGE in marker.args else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

TINY_CORPUS = [
    "{CLS} What is the category of this remote sensing image? Answer with one word.",
    "water forest farmland desert residential airport beach snow",
    "{VQA} Is there a ship in the image? yes no How many planes are there? 0 1 2 3 4 5",
    "{VG} Where is the storage tank? [[120, 340, 560, 780]]",
    "<reasoning>The texture is smooth and blue.</reasoning><answer>water</answer>",
] * 20


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tiny_model_of(tmp_path_factory):
    """``tiny_model_of(family)``: a random-init tiny model of that base-model family (about 5 M parameters) with its
    trained tokenizer and processor, built once per test session."""
    from tinyrs.model.tiny import build_tiny_model

    built: dict[str, Path] = {}

    def model_dir(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp(f"tiny_model_{family}")
            build_tiny_model(out, TINY_CORPUS, min_pixels=3136, max_pixels=112 * 112, seed=0, family=family)
            built[family] = out
        return built[family]

    return model_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_of) -> Path:
    """The tiny Qwen2-VL, the default family."""
    from tinyrs.model.families import DEFAULT_FAMILY

    return tiny_model_of(DEFAULT_FAMILY)


COLOURS = {"water": (30, 60, 200), "forest": (20, 110, 30), "desert": (220, 200, 120), "snow": (240, 240, 250)}


@pytest.fixture(scope="session")
def tiny_sft_manifest(tmp_path_factory) -> Path:
    """A 48-record classification list, corrected and turned into a Parquet manifest by the real data stages."""
    import json
    import random

    import numpy as np
    from PIL import Image

    from tinyrs.data.correct import correct_list
    from tinyrs.data.oversample import oversample

    root = tmp_path_factory.mktemp("sft_data")
    (root / "UCM").mkdir()
    rng = random.Random(0)
    records = []
    for number in range(48):
        label = rng.choice(sorted(COLOURS))
        noise = np.random.default_rng(number).integers(-25, 25, (112, 112, 3))
        pixels = np.clip(np.array(COLOURS[label]) + noise, 0, 255).astype("uint8")
        Image.fromarray(pixels).save(root / "UCM" / f"{number}.jpg")
        records.append({"id": number, "source_dataset": "UCM", "image": f"{number}.jpg", "conversations": [
            {"from": "human", "value": "<image>\n{CLS} What is the category of this image?"},
            {"from": "gpt", "value": label}]})
    (root / "list.json").write_text(json.dumps(records))
    correct_list(root / "list.json", root, "exists", root / "out" / "corrected", workers=1)
    oversample(root / "out" / "corrected", None, 0, root / "out")
    return root / "out" / "manifest.parquet"
