"""The demo world: a synthetic stand-in for the four Hub datasets, small enough for 2 CPU cores.

``build_demo_world(out, seed, scale)`` writes, under ``out``, the folders ``VHM_VersaD``,
``VHM_dataset_sft``, ``VHM_dataset_grpo`` and ``scorers_datasets_eval`` laid out like the Hub
repositories (docs/design.md), then ``demo_world.json`` (counts and seed) last, as the completion
marker. ``world="geovlm-r1"`` writes GeoVLM-R1's three repositories instead, in the layout
recipes/geovlm-r1.yaml reads (``geovlm_layouts``). The same seed gives byte-identical files: every
random choice comes from a stream seeded by (seed, section), never from global random state.

Modules: ``scenes`` draws images, ``changes`` draws before/after pairs, ``content`` asks questions about
them, ``geovlm_tasks`` asks GeoVLM-R1's tasks, ``plan`` holds the sizes and mixes, ``layouts`` and
``geovlm_layouts`` write the repositories.
"""
from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Callable

from tinyrs.data.demo_world import geovlm_layouts, layouts, plan
from tinyrs.io import write_json
from tinyrs.paths import DEMO_WORLD_SUMMARY as SUMMARY_NAME

TINYRS, GEOVLM = "tinyrs", "geovlm-r1"
WORLDS = (TINYRS, GEOVLM)  # TinyRS's four Hub repositories; GeoVLM-R1's three, in its recipe's layout


def section_rng(seed: int, section: str) -> random.Random:
    """An independent stream per section, so resizing one list does not change the others."""
    return random.Random(f"tinyrs-demo-world:{seed}:{section}")


def build_demo_world(out: str | Path, seed: int, scale: str, world: str = TINYRS) -> dict:
    """Write the demo world ``world`` (``WORLDS``) of a named scale under ``out``; return its summary."""
    if world not in WORLDS:
        raise ValueError(f"unknown demo world '{world}': expected one of {', '.join(WORLDS)}")
    scales = plan.SCALES if world == TINYRS else plan.GEO_SCALES
    if scale not in scales:
        raise ValueError(f"unknown demo world scale '{scale}': expected one of {', '.join(scales)}")
    if world == TINYRS:
        return write_demo_world(out, seed, scales[scale], scale)
    return write_geovlm_world(out, seed, scales[scale], scale)


def _written(out: str | Path, repos: tuple[str, ...], header: dict, sections: Callable[[Path], dict]) -> dict:
    """Replace ``repos`` under ``out`` with what ``sections(root)`` writes; the summary (``header`` and the
    sections' counts) goes last, as the completion marker."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    (root / SUMMARY_NAME).unlink(missing_ok=True)  # incomplete until rewritten at the end
    for repo in repos:
        shutil.rmtree(root / repo, ignore_errors=True)
    summary = {**header, **sections(root)}
    write_json(root / SUMMARY_NAME, summary)
    return summary


def write_demo_world(out: str | Path, seed: int, sizes: plan.Scale, scale_name: str) -> dict:
    """Write the four TinyRS repositories with ``sizes`` under ``out`` (replacing earlier ones), summary last."""
    return _written(out, layouts.REPOS, {"seed": seed, "scale": scale_name, "world": TINYRS, "sizes": vars(sizes)},
                    lambda root: {
        layouts.VERSAD: layouts.write_versad(root / layouts.VERSAD, sizes, section_rng(seed, "versad")),
        layouts.SFT: layouts.write_sft(root / layouts.SFT, sizes, section_rng(seed, "sft"),
                                       section_rng(seed, "sft_reasoning")),
        layouts.GRPO: layouts.write_grpo(root / layouts.GRPO, sizes, section_rng(seed, "grpo")),
        layouts.EVAL: layouts.write_eval(root / layouts.EVAL, sizes, lambda name: section_rng(seed, name)),
    })


def write_geovlm_world(out: str | Path, seed: int, sizes: plan.GeoScale, scale_name: str) -> dict:
    """Write the three GeoVLM-R1 repositories (``geovlm_layouts``) under ``out``, summary last."""
    return _written(out, geovlm_layouts.REPOS,
                    {"seed": seed, "scale": scale_name, "world": GEOVLM, "sizes": vars(sizes)}, lambda root: {
        geovlm_layouts.SFT: geovlm_layouts.write_sft(root / geovlm_layouts.SFT, sizes, section_rng(seed, "geo-sft")),
        geovlm_layouts.GRPO: geovlm_layouts.write_grpo(root / geovlm_layouts.GRPO, sizes,
                                                       section_rng(seed, "geo-grpo")),
        geovlm_layouts.EVAL: geovlm_layouts.write_eval(root / geovlm_layouts.EVAL, sizes,
                                                       lambda name: section_rng(seed, name)),
    })
