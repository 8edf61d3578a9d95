"""The GeoVLM-R1 demo world: the recipe's layout, bi-temporal pairs, and that every stage's reader takes it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tinyrs.cli import demo as demo_cli
from tinyrs.config import eval_tasks, load_config, stage_settings
from tinyrs.data.demo_world import GEOVLM, SUMMARY_NAME, WORLDS, geovlm_layouts, plan, write_geovlm_world
from tinyrs.data.demo_world.changes import draw_change
from tinyrs.data.demo_world.geovlm_tasks import TASKS
from tinyrs.data.validate import validate_list
from tinyrs.settings import GrpoSettings

REPO = Path(__file__).resolve().parents[1]
PROFILE = ["config.yaml", "recipes/geovlm-r1.yaml", "profiles/demo-geovlm-r1/overrides.yaml"]
MICRO = plan.GeoScale(sft=28, grpo=14, eval_per_task=4)
PAIR_TASKS = {"damage_detection", "change_caption"}


@pytest.fixture(scope="module")
def config():
    return load_config([REPO / name for name in PROFILE])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("geovlm") / "hub"
    return root, write_geovlm_world(root, 0, MICRO, "micro")


def test_the_worlds_are_the_configs_and_the_clis():
    schema = yaml.safe_load((REPO / "tinyrs" / "schema" / "config.schema.yaml").read_text(encoding="utf-8"))
    world = schema["properties"]["demo_world"]["oneOf"][1]["properties"]["world"]
    assert tuple(world["enum"]) == WORLDS
    parser = argparse.ArgumentParser()
    demo_cli.register(parser.add_subparsers(dest="command"))
    assert parser.parse_args(["demo-world", "--out", "x", "--world", GEOVLM]).world == GEOVLM
    with pytest.raises(SystemExit):
        parser.parse_args(["demo-world", "--out", "x", "--world", "geovlm"])


def test_the_profile_reads_the_worlds_repositories_and_every_task(config):
    assert config["demo_world"]["world"] == GEOVLM and config["base_model"]["family"] == "qwen2.5-vl"
    assert {spec["repo"].split("/")[-1] for spec in config["hub"]["datasets"].values()} >= set(geovlm_layouts.REPOS)
    assert config["data"]["lists"]["geovlm_sft"]["file"] == plan.GEO_SFT_LIST
    assert {task["file"] for task in eval_tasks(config).values()} == set(plan.GEO_EVAL_TASKS)
    assert set(plan.GEO_MIX) == set(TASKS) <= set(stage_settings(config, "grpo")["rewards"]["by_task"])


def test_layout_and_sft_list(world, tmp_path):
    """The raw list (bare names + source_dataset, like VHM's) corrects without a reject and then validates with the
    recipe's tags; a pair keeps [before, after]."""
    from tinyrs.data.correct import correct_list

    root, summary = world
    assert sorted(p.name for p in root.iterdir()) == sorted([*geovlm_layouts.REPOS, SUMMARY_NAME])
    assert json.loads((root / SUMMARY_NAME).read_text()) == summary
    sft = root / geovlm_layouts.SFT
    report = correct_list(sft / plan.GEO_SFT_LIST, sft, "decode", tmp_path, workers=1)
    assert report["kept"] == MICRO.sft and report["rejected_total"] == 0
    assert list(validate_list(tmp_path / "corrected.json", sft, ("think", "answer"))) == []
    records = json.loads((tmp_path / "corrected.json").read_text())
    assert len(records) == MICRO.sft
    pair_folders = {plan.GEO_MIX[task][0] for task in PAIR_TASKS}
    for record in records:
        if record["source_dataset"] in pair_folders:
            before, after = record["image"]
            assert before.endswith("_before.jpg") and after.endswith("_after.jpg")
            assert record["conversations"][0]["value"].startswith("<image>\n<image>\n")
        else:
            assert isinstance(record["image"], str)


def test_grpo_rows_route_to_the_recipes_task_rewards(world, config, tiny_model_of):
    from tinyrs.grpo.dataset import load_grpo_dataset
    from tinyrs.model.load import load_processor

    root, _ = world
    settings = GrpoSettings.from_dict(stage_settings(config, "grpo"), "grpo settings")
    processor = load_processor(tiny_model_of("qwen2.5-vl"), settings.min_pixels, settings.max_pixels)
    dataset, report = load_grpo_dataset(str(root / geovlm_layouts.GRPO), settings, processor)
    assert report["kept"] == MICRO.grpo and report["skipped"] == {}
    assert report["reward_routes"] == {f"task:{task}": count for task, count in
                                       geovlm_layouts.task_counts(MICRO.grpo).items() if count}
    for row in dataset:
        assert len(row["images"]) == (2 if row["task"] in PAIR_TASKS else 1)


def test_eval_files_load_with_both_images_of_a_pair(world, config):
    from tinyrs.eval.records import load_samples
    from tinyrs.eval.tasks import task_registry

    root, _ = world
    for task in task_registry(eval_tasks(config)).values():
        samples, skips = load_samples(task, root / geovlm_layouts.EVAL)
        assert len(samples) == MICRO.eval_per_task and not skips, task.key
        pair = plan.GEO_EVAL_TASKS[task.file] in PAIR_TASKS
        for sample in samples:
            assert len(sample.image_paths) == (2 if pair else 1) and all(p.is_file() for p in sample.image_paths)


def test_same_seed_same_bytes(tmp_path, world):
    root, _ = world
    write_geovlm_world(tmp_path, 0, MICRO, "micro")
    for name in (f"{geovlm_layouts.SFT}/{plan.GEO_SFT_LIST}", f"{geovlm_layouts.EVAL}/det_xBD.json"):
        assert (tmp_path / name).read_bytes() == (root / name).read_bytes()


def test_a_change_pair_shows_what_appeared_disappeared_and_was_damaged():
    change = draw_change("harbor", {"ship": 2, "storage tank": 2}, 1, 1, {"vehicle": 2}, np.random.default_rng(3))
    before, after = change.before.image.astype(int), change.after.image.astype(int)

    def patch(image, obj):
        x1, y1, x2, y2 = obj.box
        return image[y1:y2, x1:x2]

    (gone,), (damaged,) = change.disappeared, change.damaged
    assert len(change.appeared) == 2 and {obj.kind for obj in change.appeared} == {"vehicle"}
    kept = [obj for obj in change.before.objects if obj not in (gone, damaged)]
    assert all(np.array_equal(patch(before, obj), patch(after, obj)) for obj in kept)
    assert not np.array_equal(patch(before, gone), patch(after, gone))
    assert patch(after, damaged).mean() < patch(before, damaged).mean() - 20   # charred
    for obj in change.appeared:   # drawn where the ground was bare before
        assert not np.array_equal(patch(before, obj), patch(after, obj))
    assert set(change.after.objects) == {*kept, damaged, *change.appeared}
