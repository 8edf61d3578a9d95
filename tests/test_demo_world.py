"""The demo world generator: layouts, planned anomalies, determinism, and that the data is learnable."""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import random
import re
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tinyrs.answers import format_box, parse_boxes
from tinyrs.cli import demo as demo_cli
from tinyrs.data.demo_world import SUMMARY_NAME, build_demo_world, content, layouts, plan, write_demo_world
from tinyrs.data.demo_world.scenes import HOSTS, IMAGE_SIZE, SCENE_CLASSES, draw_scene
from tinyrs.eval import tasks as eval_tasks

REPO_ROOT = Path(__file__).resolve().parents[1]
SEED = 0
BOX = re.compile(r"^\[\[(\d+), (\d+), (\d+), (\d+)\]\]$")
REASONED = re.compile(r"^<reasoning>[^<>]+</reasoning><answer>([^<>]+)</answer>$")
PREFIXES = ("{CLS} ", "{VQA} ", "{VG} ")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    parent = tmp_path_factory.mktemp("demo")
    summary = build_demo_world(parent / "hub", SEED, "tiny")
    return parent, parent / "hub", summary


def read(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def eval_task_files() -> list[str]:
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text(encoding="utf-8"))
    return [task["file"] for task in config["eval"]["tasks"].values()]


def shard_members(versad: Path) -> dict[str, tarfile.TarInfo]:
    members = {}
    for shard in sorted(versad.glob("*/*.tar")):
        assert re.fullmatch(rf"{re.escape(shard.parent.name)}-\d{{6}}\.tar", shard.name), shard
        with tarfile.open(shard) as tar:
            for info in tar.getmembers():
                members[info.name] = info
    return members


def area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# --- layouts ------------------------------------------------------------------------------------

def test_writes_every_layout_inside_out_only(world):
    parent, root, summary = world
    assert [p.name for p in parent.iterdir()] == ["hub"]
    assert sorted(p.name for p in root.iterdir()) == sorted(
        ["VHM_VersaD", "VHM_dataset_sft", "VHM_dataset_grpo", "scorers_datasets_eval", SUMMARY_NAME])
    for relative in ("VHM_VersaD/list_pretrain.json", "VHM_dataset_sft/list_sft.json",
                     "VHM_dataset_sft/list_sft_reasoning.json", "VHM_dataset_grpo/dataset_dict.json"):
        assert (root / relative).is_file(), relative
    assert read(root / SUMMARY_NAME) == summary
    assert summary["seed"] == SEED and summary["scale"] == "tiny"
    assert summary["VHM_dataset_sft"]["list_sft.json"]["records"] == plan.SCALES["tiny"].sft


def test_pretrain_list_has_sources_bare_names_and_planned_anomalies(world):
    _, root, summary = world
    records = read(root / "VHM_VersaD/list_pretrain.json")
    assert len(records) == plan.SCALES["tiny"].pretrain
    folders = {p.name for p in (root / "VHM_VersaD").iterdir() if p.is_dir()}
    assert folders == set(plan.PRETRAIN_SOURCES)
    as_list = []
    for record in records:
        assert set(record) == {"id", "source_dataset", "image", "conversations"}
        image = record["image"]
        if isinstance(image, list):
            assert len(image) == 1
            as_list.append(record["id"])
            image = image[0]
        assert "/" not in image and image.endswith(".jpg")
        human, gpt = record["conversations"]
        assert human == {"from": "human", "value": "<image>\nDescribe this image."}
        assert gpt["from"] == "gpt" and any(cls in gpt["value"] for cls in SCENE_CLASSES)
    sources = Counter(r["source_dataset"] for r in records)
    assert sources["corwdAI"] > 0 and sources["crowdAI"] > 0  # both spellings, neither is the folder name
    assert "corwdAI" not in folders and "crowdai" in folders
    anomalies = summary["VHM_VersaD"]["anomalies"]
    expected = round(len(records) * 0.01)
    assert len(anomalies["missing_image"]) == expected
    assert sorted(as_list) == anomalies["image_list"] and len(as_list) == expected


def test_shards_hold_every_listed_image_except_the_missing_ones(world):
    _, root, summary = world
    members = shard_members(root / "VHM_VersaD")
    missing = set(summary["VHM_VersaD"]["anomalies"]["missing_image"])
    for record in read(root / "VHM_VersaD/list_pretrain.json"):
        name = record["image"][0] if isinstance(record["image"], list) else record["image"]
        stem = name.removesuffix(".jpg")
        assert (name in members) == (stem not in missing), name
        assert (f"{stem}.json" in members) == (stem not in missing)
    assert {(info.mtime, info.uid, info.gid, info.uname) for info in members.values()} == {
        (members[next(iter(members))].mtime, 0, 0, "")}


@pytest.mark.parametrize("list_name", ["list_sft.json", "list_sft_reasoning.json"])
def test_sft_lists_are_upstream_vhm_style(world, list_name):
    _, root, _ = world
    records = read(root / "VHM_dataset_sft" / list_name)
    turns = Counter()
    for record in records:
        assert "/" not in record["image"]
        assert (root / "VHM_dataset_sft" / record["source_dataset"] / record["image"]).is_file()
        conversations = record["conversations"]
        assert [t["from"] for t in conversations] == ["human", "gpt"] * (len(conversations) // 2)
        first = conversations[0]["value"]
        assert first.startswith("<image>\n") and first[len("<image>\n"):].startswith(PREFIXES)
        assert all("<image>" not in t["value"] for t in conversations[1:])
        if list_name == "list_sft_reasoning.json":
            assert all(REASONED.match(t["value"]) for t in conversations[1::2]), conversations
        turns[len(conversations) // 2] += 1
    if list_name == "list_sft.json":
        assert turns[2] > 0 and turns[1] > 0  # a few multi-turn records


def answers_by_prefix(records: list[dict]) -> dict[str, set[str]]:
    vocab: dict[str, set[str]] = {}
    for record in records:
        turns = record["conversations"]
        for human, gpt in zip(turns[::2], turns[1::2]):
            question = human["value"].removeprefix("<image>\n")
            prefix = question.split(" ", 1)[0]
            answer = gpt["value"]
            match = REASONED.match(answer)
            vocab.setdefault(prefix, set()).add(match.group(1) if match else answer)
    return vocab


def test_training_and_eval_answers_share_one_vocabulary(world):
    _, root, _ = world
    sft = answers_by_prefix(read(root / "VHM_dataset_sft/list_sft.json"))
    cot = answers_by_prefix(read(root / "VHM_dataset_sft/list_sft_reasoning.json"))
    assert sft["{CLS}"] == cot["{CLS}"] == set(SCENE_CLASSES)
    closed = {"yes", "no", "rural", "urban", "A", "B", "C", "D", *map(str, range(6))}
    assert sft["{VQA}"] == closed and cot["{VQA}"] <= closed
    assert all(BOX.match(a) for a in sft["{VG}"] | cot["{VG}"])
    eval_dir = root / "scorers_datasets_eval"
    for name in eval_task_files():
        answers = {r["conversations"][1]["value"] for r in read(eval_dir / name)}
        assert answers <= sft["{CLS}"] | sft["{VQA}"] or all(BOX.match(a) for a in answers), name


def test_classification_is_a_substantial_share_of_sft(world):
    _, root, _ = world
    records = read(root / "VHM_dataset_sft/list_sft.json")
    cls = sum(r["conversations"][0]["value"].startswith("<image>\n{CLS}") for r in records)
    assert cls / len(records) >= 0.35


# --- images and boxes ---------------------------------------------------------------------------

def grounding_samples(root: Path):
    """(image path, box answer on 0-1000) for every grounding record of the eval file and the SFT list.

    The eval file stores pixel boxes (like the real DIOR-RSVG test file); they are normalised here.
    """
    eval_dir = root / "scorers_datasets_eval"
    for record in read(eval_dir / "VG_DOIR_RSVG_test.json"):
        width, height = record["size"]
        ((x1, y1, x2, y2),) = parse_boxes(record["conversations"][1]["value"])
        yield (eval_dir / "VG_DOIR_RSVG_test" / record["image"],
               format_box((x1 / width * 1000, y1 / height * 1000, x2 / width * 1000, y2 / height * 1000)))
    for record in read(root / "VHM_dataset_sft/list_sft.json"):
        if "{VG}" in record["conversations"][0]["value"]:
            yield (root / "VHM_dataset_sft" / record["source_dataset"] / record["image"],
                   record["conversations"][1]["value"])


def test_boxes_are_in_range_and_cover_the_drawn_object(world):
    _, root, _ = world
    checked = 0
    for path, answer in grounding_samples(root):
        assert BOX.match(answer), answer
        ((x1, y1, x2, y2),) = parse_boxes(answer)
        assert 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000
        image = pixels(path)
        height, width, _ = image.shape
        px1, px2 = int(x1 / 1000 * width), int(np.ceil(x2 / 1000 * width))
        py1, py2 = int(y1 / 1000 * height), int(np.ceil(y2 / 1000 * height))
        # from a few pixels to most of the image, like DIOR-RSVG's referred objects
        assert 0.01 * width <= px2 - px1 <= 0.65 * width and 0.01 * height <= py2 - py1 <= 0.65 * height
        ring = np.zeros(image.shape[:2], bool)
        ring[max(py1 - 4, 0):py2 + 4, max(px1 - 4, 0):px2 + 4] = True
        ring[py1:py2, px1:px2] = False
        inside, around = image[py1:py2, px1:px2].reshape(-1, 3).mean(0), image[ring].mean(0)
        assert np.abs(inside - around).sum() > 40, (path, answer, inside, around)
        checked += 1
    assert checked >= 100


def test_grounding_eval_has_real_image_sizes_and_every_size_bucket(world):
    """DIOR-RSVG's test images are 800 x 800 and its boxes are pixels of them: small, medium and large all occur."""
    from collections import Counter

    from tinyrs.eval.scoring import size_bucket

    _, root, _ = world
    eval_dir = root / "scorers_datasets_eval"
    buckets = Counter()
    for record in read(eval_dir / "VG_DOIR_RSVG_test.json"):
        assert record["size"] == [800, 800]
        assert pixels(eval_dir / "VG_DOIR_RSVG_test" / record["image"]).shape[:2] == (800, 800)
        ((x1, y1, x2, y2),) = parse_boxes(record["conversations"][1]["value"])
        buckets[size_bucket((x2 - x1) * (y2 - y1))] += 1
    assert set(buckets) == {"small", "medium", "large"} and min(buckets.values()) >= 0.15 * sum(buckets.values())


def test_scene_classes_are_separable_by_mean_colour(world):
    """A nearest-mean-colour classifier trained on SFT images scores >= 0.9 on the eval images."""
    _, root, _ = world
    means: dict[str, list[np.ndarray]] = {}
    for record in read(root / "VHM_dataset_sft/list_sft.json"):
        if record["conversations"][0]["value"].startswith("<image>\n{CLS}"):
            path = root / "VHM_dataset_sft" / record["source_dataset"] / record["image"]
            means.setdefault(record["conversations"][1]["value"], []).append(pixels(path).mean((0, 1)))
    centroids = {label: np.mean(values, axis=0) for label, values in means.items()}
    correct = total = 0
    eval_dir = root / "scorers_datasets_eval"
    for name in eval_task_files():
        if name.startswith("cls_"):
            for record in read(eval_dir / name):
                colour = pixels(eval_dir / Path(name).stem / record["image"]).mean((0, 1))
                guess = min(centroids, key=lambda label: np.linalg.norm(centroids[label] - colour))
                correct += guess == record["conversations"][1]["value"]
                total += 1
    assert total == 5 * plan.SCALES["tiny"].eval_per_task
    assert correct / total >= 0.9


def test_eval_images_are_new_drawings(world):
    _, root, _ = world
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    training = {digest(p) for p in (root / "VHM_dataset_sft").rglob("*.jpg")}
    evaluation = {digest(p) for p in (root / "scorers_datasets_eval").rglob("*.jpg")}
    assert len(evaluation) == 12 * plan.SCALES["tiny"].eval_per_task
    assert not training & evaluation


def test_objects_only_go_where_the_scene_can_hold_them():
    with pytest.raises(ValueError, match="cannot hold a ship"):
        draw_scene("desert", {"ship": 1}, np.random.default_rng(0))


@pytest.mark.parametrize("scene_class", sorted(HOSTS))
def test_an_enlarged_target_fits_every_host_scene_shrinking_no_smaller_than_natural(scene_class):
    """The largest grounding targets (``plan.VG_TARGET_SCALES``) do not fit every region (a vehicle on a road):
    the sprite shrinks try by try until it fits, never below its natural size, instead of failing the world."""
    largest = max(plan.VG_TARGET_SCALES)
    for kind in HOSTS[scene_class]:
        for seed in range(5):
            (natural,) = draw_scene(scene_class, {kind: 1}, np.random.default_rng(seed)).objects
            (enlarged,) = draw_scene(scene_class, {kind: 1}, np.random.default_rng(seed), {kind: largest}).objects
            assert area(enlarged.box) >= area(natural.box), (scene_class, kind, seed)


# --- GRPO ---------------------------------------------------------------------------------------

def test_grpo_dataset_loads_with_all_answer_types(world):
    from datasets import load_from_disk

    _, root, _ = world
    train = load_from_disk(str(root / "VHM_dataset_grpo"))["train"]
    assert len(train) == plan.SCALES["tiny"].grpo
    assert set(train.column_names) == {"prompt", "image", "solution"}
    types = Counter()
    for row in train:
        (message,) = row["prompt"]
        assert message["role"] == "user"
        assert [item["type"] for item in message["content"]] == ["image", "text"]
        answer_type, answer, question, encoded = row["solution"]
        assert message["content"][1]["text"] == question and "<image>" not in question
        assert row["image"].size == (IMAGE_SIZE, IMAGE_SIZE)
        with Image.open(io.BytesIO(base64.b64decode(encoded))) as decoded:
            assert np.array_equal(np.asarray(decoded), np.asarray(row["image"]))
        if answer_type == "2":
            assert BOX.match(answer)
        elif answer_type == "1":
            assert answer in {"yes", "no", "rural", "urban", *SCENE_CLASSES, *map(str, range(6))}
        else:
            assert answer_type == "0" and question == "Describe this image." and len(answer.split()) > 8
        types[answer_type] += 1
    assert set(types) == {"0", "1", "2"}


# --- eval ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", eval_task_files())
def test_eval_file_schema(world, name):
    _, root, _ = world
    records = read(root / "scorers_datasets_eval" / name)
    assert len(records) == plan.SCALES["tiny"].eval_per_task
    for record in records:
        expected = {"image", "conversations", "size"} | ({"type"} if name == "LHRS-Bench.json" else set())
        assert set(record) == expected
        human, gpt = record["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert "<image>" not in human["value"] and not human["value"].startswith("{")
        with Image.open(root / "scorers_datasets_eval" / Path(name).stem / record["image"]) as image:
            assert record["size"] == list(image.size)
        if name == "LHRS-Bench.json":
            assert record["type"] and all(1 <= t <= 11 for t in record["type"])
            assert human["value"].endswith("Answer with the option's letter.")
            assert f"{gpt['value']}. " in human["value"]


def test_classification_tasks_have_own_label_sets_of_four_or_more(world):
    _, root, _ = world
    label_sets = set()
    for name in eval_task_files():
        if name.startswith("cls_"):
            answers = Counter(r["conversations"][1]["value"] for r in read(root / "scorers_datasets_eval" / name))
            assert len(answers) >= 4 and max(answers.values()) / sum(answers.values()) <= 0.25, name
            label_sets.add(frozenset(answers))
    assert len(label_sets) >= 3


@pytest.mark.parametrize("name,answers", [
    ("RSVQA_HR-comp.json", {"yes", "no"}), ("RSVQA_HR-presence.json", {"yes", "no"}),
    ("RSVQA_LR-comp.json", {"yes", "no"}), ("RSVQA_LR-presence.json", {"yes", "no"}),
    ("RSVQA_LR-rural_urban.json", {"rural", "urban"}),
])
def test_vqa_eval_answers_are_balanced(world, name, answers):
    _, root, _ = world
    counts = Counter(r["conversations"][1]["value"] for r in read(root / "scorers_datasets_eval" / name))
    assert set(counts) == answers and len(set(counts.values())) == 1


# What each demo LHRS-Bench question asks, by the opening of its text, and the type names it must carry.
LHRS_QUESTION_TYPES = {
    "What type of scene": ("identity",), "Which kind of object can be seen": ("identity",),
    "What is the main colour": ("color",), "How many": ("quantity",), "In which part": ("location",),
    "Which kind of object is the most numerous": ("quantity",), "What kind of area": ("identity",),
    "Is there a": ("identity",), "Which object in the image is the largest": ("area",),
    "How is the": ("orientation",), "Judging from the objects": ("identity", "reasoning"),
}


def test_lhrs_type_table_is_one_table():
    assert content.LHRS_TYPES is eval_tasks.LHRS_TYPES
    assert eval_tasks.LHRS_TYPES[2] == "color" and eval_tasks.LHRS_TYPES[3] == "orientation"


@pytest.mark.parametrize("kind", content.MC_KINDS, ids=lambda kind: kind.__name__)
def test_each_multiple_choice_kind_carries_the_ids_of_its_type(kind):
    _, (qa,) = kind(content.Asker(random.Random(5)))
    (names,) = [names for opening, names in LHRS_QUESTION_TYPES.items() if qa.question.startswith(opening)]
    assert [eval_tasks.LHRS_TYPES[type_id] for type_id in qa.lhrs_types] == list(names)


def test_a_colour_question_carries_the_id_the_table_calls_colour():
    _, (qa,) = content.mc_colour(content.Asker(random.Random(0)))
    assert qa.question.startswith("What is the main colour")
    assert [eval_tasks.LHRS_TYPES[type_id] for type_id in qa.lhrs_types] == ["color"]
    assert qa.lhrs_types == (2,)


def test_lhrs_bench_types_mean_what_the_eval_table_says(world):
    _, root, summary = world
    records = read(root / "scorers_datasets_eval/LHRS-Bench.json")
    for record in records:
        question = record["conversations"][0]["value"]
        (names,) = [names for opening, names in LHRS_QUESTION_TYPES.items() if question.startswith(opening)]
        assert [eval_tasks.LHRS_TYPES[t] for t in record["type"]] == list(names), question
    types = {t for r in records for t in r["type"]}
    assert {eval_tasks.LHRS_TYPES[t] for t in types} == {
        "identity", "color", "quantity", "location", "area", "orientation", "reasoning"}
    assert summary[layouts.EVAL]["lhrs_types"] == {str(k): v for k, v in eval_tasks.LHRS_TYPES.items()}


# --- determinism and CLI ------------------------------------------------------------------------

MICRO = plan.Scale(pretrain=30, sft=40, reasoning=20, grpo=9, eval_per_task=2, shard_size=8)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        write_demo_world(tmp_path / name, seed, MICRO, "micro")
    first, second, other = (tree_hashes(tmp_path / name) for name in "abc")
    assert any(name.endswith(".tar") for name in first) and any(name.endswith(".arrow") for name in first)
    assert first == second
    for name in ("VHM_VersaD/list_pretrain.json", "VHM_VersaD/crowdai/crowdai-000000.tar",
                 "VHM_dataset_sft/list_sft.json", "scorers_datasets_eval/cls_AID/cls_AID_00000.jpg"):
        assert first[name] != other[name], name


def test_rewriting_replaces_an_earlier_world(tmp_path):
    stale = tmp_path / "VHM_dataset_sft" / "stale" / "old.jpg"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    write_demo_world(tmp_path, 1, MICRO, "micro")
    assert not stale.exists() and (tmp_path / SUMMARY_NAME).is_file()


def test_cli_registers_demo_world():
    parser = argparse.ArgumentParser()
    demo_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo-world", "--out", "x", "--seed", "3", "--scale", "small"])
    assert (args.out, args.seed, args.scale, args.func) == ("x", 3, "small", demo_cli.run_demo_world)
    with pytest.raises(SystemExit):
        parser.parse_args(["demo-world", "--out", "x", "--scale", "huge"])
