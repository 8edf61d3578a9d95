"""The demo world: a synthetic stand-in for the four Hub datasets, small enough for 2 CPU cores.

``build_demo_world(out, seed, scale)`` writes, under ``out``, the folders ``VHM_VersaD``,
``VHM_dataset_sft``, ``VHM_dataset_grpo`` and ``scorers_datasets_eval`` laid out like the Hub
repositories (docs/design.md), then ``demo_world.json`` (counts and seed) last, as the completion
marker. The same seed gives byte-identical files: every random choice comes from a stream seeded by
(seed, section), never from global random state.

Modules: ``scenes`` draws images, ``content`` asks questions about them, ``plan`` holds the sizes
and mixes, ``layouts`` writes the repositories.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path

from tinyrs.data.demo_world import layouts, plan
from tinyrs.io import write_json
from tinyrs.paths import DEMO_WORLD_SUMMARY as SUMMARY_NAME



def section_rng(seed: int, section: str) -> random.Random:
    """An independent stream per section, so resizing one list does not change the others."""
    return random.Random(f"tinyrs-demo-world:{seed}:{section}")


def build_demo_world(out: str | Path, seed: int, scale: str) -> dict:
    """Write the demo world of a named scale (``plan.SCALES``) under ``out``; return its summary."""
    if scale not in plan.SCALES:
        raise ValueError(f"unknown demo world scale '{scale}': expected one of {', '.join(plan.SCALES)}")
    return write_demo_world(out, seed, plan.SCALES[scale], scale)


def write_demo_world(out: str | Path, seed: int, sizes: plan.Scale, scale_name: str) -> dict:
    """Write the four repositories with ``sizes`` under ``out`` (replacing earlier ones), summary last."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / SUMMARY_NAME).unlink(missing_ok=True)  # incomplete until rewritten at the end
    for repo in layouts.REPOS:
        shutil.rmtree(root / repo, ignore_errors=True)
    summary = {
        "seed": seed,
        "scale": scale_name,
        "sizes": vars(sizes),
        layouts.VERSAD: layouts.write_versad(root / layouts.VERSAD, sizes, section_rng(seed, "versad")),
        layouts.SFT: layouts.write_sft(root / layouts.SFT, sizes, section_rng(seed, "sft"),
                                       section_rng(seed, "sft_reasoning")),
        layouts.GRPO: layouts.write_grpo(root / layouts.GRPO, sizes, section_rng(seed, "grpo")),
        layouts.EVAL: layouts.write_eval(root / layouts.EVAL, sizes, lambda name: section_rng(seed, name)),
    }
    write_json(root / SUMMARY_NAME, summary)
    return summary
