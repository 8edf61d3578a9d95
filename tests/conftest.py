"""Shared fixtures: the repository root and a tiny Qwen2-VL model built once per test session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random-init tiny Qwen2-VL (about 5 M parameters) with its trained tokenizer and processor."""
    from tinyrs.model.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_model")
    build_tiny_model(out, TINY_CORPUS, min_pixels=3136, max_pixels=112 * 112, seed=0)
    return out
