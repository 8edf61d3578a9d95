"""The GRPO dataset check: malformed and over-long rows are counted skips; lengths are the processor's own."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from data_fixtures import encoded, two_image_row, write_two_image_dataset
from PIL import Image

from tinyrs import chat
from tinyrs.config import load_config, stage_settings
from tinyrs.settings import GrpoSettings
from tinyrs.grpo.dataset import image_items, load_grpo_dataset, prompt_tokens, with_system_prompt
from tinyrs.io import DataError
from tinyrs.model.load import load_processor

CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
MIN_PIXELS, MAX_PIXELS = 3136, 224 * 224
QUESTION = "{CLS} What is the category of this remote sensing image? Answer with one word."


def image(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (30, 60, 200))


def row(picture: Image.Image | None, solution: list | None = None, question: str = QUESTION) -> dict:
    """A row as the GRPO DatasetDict holds it (see ``tinyrs.data.demo_world.layouts.write_grpo``)."""
    return {
        "prompt": [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": question}]}],
        "image": picture,
        "solution": ["1", "water", question] if solution is None else solution,
    }


def write_dataset(path: Path, rows: list[dict]) -> str:
    from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, List, Value

    features = Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "image": ImageFeature(),
        "solution": List(Value("string")),
    })
    columns = {name: [r[name] for r in rows] for name in features}
    DatasetDict({"train": Dataset.from_dict(columns, features=features)}).save_to_disk(str(path))
    return str(path)


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir, MIN_PIXELS, MAX_PIXELS)


@pytest.fixture
def settings():
    """The settings file's dict, which tests edit; ``typed`` builds the loader's settings from it."""
    settings = copy.deepcopy(stage_settings(load_config([CONFIG]), "grpo"))
    settings.update(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    return settings


def typed(settings: dict) -> GrpoSettings:
    return GrpoSettings.from_dict(settings, "test settings")


def rendered(settings: dict, prompt: list[dict]) -> list[dict]:
    return with_system_prompt(prompt, chat.system_prompt(typed(settings).chat, "reasoning"))


@pytest.mark.parametrize("size", [(56, 56), (224, 224), (100, 60), (640, 480)])
def test_prompt_tokens_equal_the_processors_count(processor, settings, size):
    picture = image(*size)
    prompt = rendered(settings, row(picture)["prompt"])
    text = chat.render(processor, prompt, add_generation_prompt=True)
    expected = len(processor(text=[text], images=[picture])["input_ids"][0])
    assert prompt_tokens(processor, prompt, [picture]) == expected


def test_long_prompts_are_skipped_and_counted(tmp_path, processor, settings):
    small, large = image(56, 56), image(224, 224)
    short = prompt_tokens(processor, rendered(settings, row(small)["prompt"]), [small])
    long = prompt_tokens(processor, rendered(settings, row(large)["prompt"]), [large])
    assert long > short
    path = write_dataset(tmp_path / "grpo", [
        row(small), row(large), row(small, solution=["2", "[[1, 2, 3, 4]]", QUESTION]),
        row(small, solution=["7", "water", QUESTION]),  # malformed rows still skip with their own reasons
        row(None),
        row(image(6000, 28)),  # an aspect ratio over 200, which the processor refuses
    ])
    settings["max_prompt_length"] = short  # a limit is inclusive: a prompt of exactly that length is kept
    dataset, report = load_grpo_dataset(path, typed(settings), processor)
    assert report["skipped"] == {"prompt_too_long": 1, "unknown_answer_type": 1, "missing_image": 1,
                                 "image_shape_unusable": 1}
    assert (report["rows"], report["kept"], report["answer_types"]) == (6, 2, {"1": 1, "2": 1})
    assert [r["image"].size for r in dataset] == [(56, 56), (56, 56)]
    assert all(r["prompt"][0]["role"] == "system" for r in dataset)

    settings["max_prompt_length"] = long
    assert load_grpo_dataset(path, typed(settings), processor)[1]["kept"] == 3


def test_a_task_column_routes_rewards_by_task(tmp_path, processor, settings):
    from datasets import DatasetDict, load_from_disk

    small = image(56, 56)
    path = write_dataset(tmp_path / "grpo", [row(small, solution=["1", "forest, river", QUESTION]),
                                             row(small, solution=["2", "[[1, 2, 3, 4]]", QUESTION]), row(small)])
    train = load_from_disk(path)["train"].add_column("task", ["classification", "scene", None])
    DatasetDict({"train": train}).save_to_disk(str(tmp_path / "with_task"))
    settings["rewards"]["by_task"] = {"classification": {"recall": 1.0}}
    dataset, report = load_grpo_dataset(str(tmp_path / "with_task"), typed(settings), processor)
    assert report["reward_routes"] == {"task:classification": 1, "unmapped_task:scene": 1, "2": 1, "1": 1}
    assert dataset["task"] == ["classification", "scene", None]   # kept for TRL to hand to the rewards


def test_a_limit_below_every_row_is_a_clear_error(tmp_path, processor, settings):
    path = write_dataset(tmp_path / "grpo", [row(image(56, 56)), row(image(224, 224))])
    settings["max_prompt_length"] = 1
    with pytest.raises(ValueError, match="no usable GRPO rows") as err:
        load_grpo_dataset(path, typed(settings), processor)
    assert path in str(err.value) and "'prompt_too_long': 2" in str(err.value)


def test_a_dataset_without_an_image_column_is_a_clear_error(tmp_path, processor, settings):
    from datasets import Dataset, DatasetDict

    rows = [row(None)]
    DatasetDict({"train": Dataset.from_dict({"prompt": [r["prompt"] for r in rows],
                                             "solution": [r["solution"] for r in rows]})}).save_to_disk(str(tmp_path))
    with pytest.raises(DataError, match="no 'image' column"):
        load_grpo_dataset(str(tmp_path), typed(settings), processor)


def test_two_image_rows_keep_their_images_in_order_and_count_both(tmp_path, processor, settings):
    before, after = image(56, 56), Image.new("RGB", (112, 56), (200, 40, 40))
    prompt = rendered(settings, two_image_row(before, after)["prompt"])
    text = chat.render(processor, prompt, add_generation_prompt=True)
    assert prompt_tokens(processor, prompt, [before, after]) == len(
        processor(text=[text], images=[before, after])["input_ids"][0])

    broken = {"bytes": b"not a jpeg", "path": "broken.jpg"}
    before, after = encoded(before), encoded(after)
    path = write_two_image_dataset(tmp_path / "grpo", [
        two_image_row(before, after), two_image_row(after, before),
        two_image_row(before, after, placeholders=1),            # one image item for two images
        two_image_row(before, broken),                           # the second image does not decode
    ])
    dataset, report = load_grpo_dataset(path, typed(settings), processor)
    assert report["skipped"] == {"image_count_mismatch": 1, "image_unreadable": 1}
    from trl.data_utils import prepare_multimodal_messages

    for prompt in ([{"role": "user", "content": "What changed?"}], two_image_row(before, after)["prompt"],
                   two_image_row(before, after, placeholders=1)["prompt"]):   # counted as TRL fills them
        fits = image_items(prompt, 2) == 2
        try:
            prepare_multimodal_messages(prompt, images=[image(8, 8), image(8, 8)])
            assert fits, prompt
        except ValueError:
            assert not fits, prompt
    assert [entry["row"] for entry in report["unreadable_images"]] == [3]
    assert report["unreadable_images"][0]["path"] == "broken.jpg"
    assert [[picture.size for picture in r["images"]] for r in dataset] == [[(56, 56), (112, 56)],
                                                                             [(112, 56), (56, 56)]]
