"""A briefly trained demo model, made by the real stages, for tests that compare inference engines.

A random-init model's greedy choices hang on logit differences of the order of float rounding, so two engines
disagree on them by chance; a model trained for a few dozen steps on the demo world answers with clear margins,
as a real checkpoint does. Built with the library functions only (no Snakemake), so it runs in every image's
test environment.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

DEMO_SFT_STEPS = 200


def build_demo_world(root: Path) -> Path:
    from tinyrs.data.demo_world import build_demo_world as build

    build(root, seed=0, scale="tiny")
    return root


def train_demo_model(root: Path, steps: int = DEMO_SFT_STEPS) -> Path:
    """demo world -> tiny Qwen2-VL -> SFT list corrected and oversampled -> ``steps`` SFT steps."""
    from tinyrs.config import load_config, typed_stage_settings
    from tinyrs.data.correct import correct_list
    from tinyrs.data.oversample import oversample
    from tinyrs.io import write_manifest
    from tinyrs.model.tiny import build_tiny_model, corpus_from_lists
    from tinyrs.sft.trainer import train

    repo = Path(__file__).resolve().parent.parent
    hub = build_demo_world(root / "hub")
    sft_dir = hub / "VHM_dataset_sft"
    lists = [sft_dir / "list_sft.json", sft_dir / "list_sft_reasoning.json"]
    base = root / "base"
    build_tiny_model(base, corpus_from_lists(lists), 3136, 12544, 0)
    write_manifest(base, stage="base", source="tiny")
    correct_list(sft_dir / "list_sft.json", sft_dir, "exists", root / "data" / "corrected", workers=1)
    oversample(root / "data" / "corrected", None, 0, root / "data")
    config = load_config([repo / "config.yaml", repo / "profiles" / "demo" / "overrides.yaml"])
    settings = dataclasses.replace(typed_stage_settings(config, "sft"), max_steps=steps, report_to=[],
                                   logging_steps=10)
    out = root / "sft"
    train(settings, str(base), str(root / "data" / "manifest.parquet"), str(out), str(root / "checkpoints"))
    return out
