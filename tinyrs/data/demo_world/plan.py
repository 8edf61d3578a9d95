"""What the demo world holds: sizes per scale, source and question mixes, label sets. Tune here.

Shares within a mix are fractions of that list; :func:`allocate` turns them into exact counts.
Sub-folder names follow the real Hub repositories (see docs/design.md and REFERENCE.md §2).
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyrs.data.demo_world.scenes import SCENE_CLASSES


@dataclass(frozen=True)
class Scale:
    pretrain: int  # VHM_VersaD list_pretrain.json records
    sft: int  # list_sft.json records
    reasoning: int  # list_sft_reasoning.json records
    grpo: int  # VHM_dataset_grpo train rows
    eval_per_task: int  # records in each of the 12 eval files
    shard_size: int  # images per VersaD tar shard


SCALES = {
    "tiny": Scale(pretrain=800, sft=1500, reasoning=600, grpo=96, eval_per_task=50, shard_size=128),
    "small": Scale(pretrain=4000, sft=7500, reasoning=3000, grpo=480, eval_per_task=100, shard_size=256),
}

# --- VHM_VersaD -------------------------------------------------------------------------------
PRETRAIN_SOURCES = {  # sub-folder -> share
    "crowdai": 0.20, "cvact": 0.10, "cvusa": 0.10, "fmow-big-bbox-center": 0.10,
    "fmow-small": 0.15, "loveda": 0.15, "millionAID": 0.20,
}
# The real list spells the crowdai folder's source both ways; the correction step must map both.
CROWDAI_FOLDER = "crowdai"
CROWDAI_SPELLINGS = ("crowdAI", "corwdAI")
MISSING_IMAGE_SHARE = 0.01  # records whose image is in no shard
IMAGE_LIST_SHARE = 0.01  # records whose `image` is a list of one name

# --- VHM_dataset_sft: (sub-folder, question kind, share) --------------------------------------
SFT_MIX = (
    ("NWPU-RESISC45", "cls", 0.16), ("UCM", "cls", 0.10), ("METER-ML", "cls", 0.07), ("fmow", "cls", 0.09),
    ("RSVQA_LR", "presence", 0.06), ("RSVQA_LR", "count", 0.05), ("RSVQA_LR", "comp", 0.04),
    ("RSVQA_LR", "rural_urban", 0.05),
    ("RSVQA_HR", "presence", 0.05), ("RSVQA_HR", "comp", 0.04), ("RSVQA_HR", "multi", 0.03),
    ("DOIR-RSVG", "vg", 0.09), ("fair1m", "vg", 0.04), ("dota", "count", 0.03),
    ("dior", "mc", 0.10),
)
REASONING_MIX = (
    ("NWPU-RESISC45", "cls", 0.20), ("UCM", "cls", 0.10),
    ("RSVQA_LR", "presence", 0.08), ("RSVQA_LR", "count", 0.10), ("RSVQA_LR", "comp", 0.07),
    ("RSVQA_LR", "rural_urban", 0.07),
    ("RSVQA_HR", "presence", 0.05), ("RSVQA_HR", "comp", 0.05),
    ("DOIR-RSVG", "vg", 0.16), ("dior", "mc", 0.12),
)

# --- grounding targets: sizes like DIOR-RSVG's (800 x 800 images; its referred objects run from a few pixels
# to most of the image). Each grounding target is drawn at one of these multiples of its sprite's natural size
# (12-46 px on a 224 px scene; an enlarged one shrinks back toward natural size where it finds no room): 0.5 makes
# mostly "small" boxes (area <= 32² px at 800 px), 1.0 "medium", 2.5 and 5.0 "large" (> 96² px). The model sees
# 4 x 4 visual tokens: only targets a token or more across (5.0: mostly 200-500 of the 0-1000 grid) can be placed at
# IoU 0.5 at all. The eval file stores images and pixel boxes at the original size.
VG_TARGET_SCALES = (0.5, 1.0, 2.5, 5.0)
VG_ORIGINAL_SIZE = (800, 800)

# --- VHM_dataset_grpo: (question kind, share); captions are the open-ended ("0") rows ----------
GRPO_MIX = (
    ("caption", 0.20), ("cls", 0.20), ("presence", 0.10), ("count", 0.10), ("comp", 0.05),
    ("rural_urban", 0.05), ("vg", 0.30),
)

# --- classification label sets: each source and eval task has its own, like the real ones -----
CLS_LABELS = {
    "NWPU-RESISC45": SCENE_CLASSES,
    "fmow": SCENE_CLASSES,
    "UCM": ("airport", "beach", "farmland", "forest", "harbor", "meadow", "parking", "residential"),
    "METER-ML": ("desert", "farmland", "industrial", "meadow", "residential", "water"),
    "cls_AID.json": ("airport", "beach", "desert", "farmland", "forest", "harbor", "industrial", "meadow",
                     "parking", "residential"),
    "cls_METER_ML.json": ("farmland", "industrial", "meadow", "residential", "water"),
    "cls_NWPU_RESISC45.json": SCENE_CLASSES,
    "cls_SIRI_WHU.json": ("farmland", "harbor", "industrial", "meadow", "residential", "water"),
    "cls_WHU_RS19.json": ("airport", "beach", "desert", "farmland", "forest", "industrial", "meadow", "parking",
                          "residential", "water"),
}

# --- scorers_datasets_eval: file -> question kind (the 12 files of config.eval.tasks) ---------
EVAL_TASKS = {
    "cls_AID.json": "cls", "cls_METER_ML.json": "cls", "cls_NWPU_RESISC45.json": "cls",
    "cls_SIRI_WHU.json": "cls", "cls_WHU_RS19.json": "cls",
    "RSVQA_HR-comp.json": "comp", "RSVQA_HR-presence.json": "presence",
    "RSVQA_LR-comp.json": "comp", "RSVQA_LR-presence.json": "presence",
    "RSVQA_LR-rural_urban.json": "rural_urban",
    "VG_DOIR_RSVG_test.json": "vg",
    "LHRS-Bench.json": "mc",
}


def allocate(total: int, shares: list[float]) -> list[int]:
    """Split ``total`` in proportion to ``shares`` (largest remainder): the counts sum to ``total``."""
    weight = sum(shares)
    exact = [total * share / weight for share in shares]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


# --- the GeoVLM-R1 world (recipes/geovlm-r1.yaml, profiles/demo-geovlm): three repositories in the recipe's layout
@dataclass(frozen=True)
class GeoScale:
    sft: int  # SFT list records
    grpo: int  # GRPO train rows
    eval_per_task: int  # records in each eval file


GEO_SCALES = {
    "tiny": GeoScale(sft=1000, grpo=112, eval_per_task=50),
    "small": GeoScale(sft=5000, grpo=560, eval_per_task=100),
}
# task (a key of the recipe's grpo_defaults.rewards.by_task) -> (the sub-folder standing for its dataset, share)
GEO_MIX = {
    "classification": ("AID", 0.14), "multilabel_classification": ("BigEarthNet", 0.14),
    "referred_detection": ("GeoChat", 0.15), "damage_detection": ("xBD", 0.14), "image_caption": ("RSICD", 0.14),
    "vqa": ("RSVQA_LRBEN", 0.15), "change_caption": ("LEVIR-CC", 0.14),
}
GEO_SFT_LIST = "geovlm_sft.json"
# eval file -> task; the recipe's eval.tasks files, plus change captions (the demo overlay adds that task)
GEO_EVAL_TASKS = {
    "cls_AID.json": "classification", "cls_BigEarthNet.json": "multilabel_classification",
    "det_referred.json": "referred_detection", "det_xBD.json": "damage_detection",
    "cap_RSICD.json": "image_caption", "vqa_RSVQA_LRBEN.json": "vqa", "cap_change.json": "change_caption",
}
