"""Task registry from config, prompt styles, and reading eval files with counted skips."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tinyrs.config import ConfigError, load_config, typed_eval_settings
from tinyrs.eval.prompts import build_messages, question_text
from tinyrs.eval.records import load_samples
from tinyrs.eval.tasks import Task, select_tasks, task_registry
from tinyrs.io import DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config([ROOT / "config.yaml"])


def test_registry_holds_the_twelve_configured_tasks(config):
    registry = task_registry(typed_eval_settings(config, "sft").tasks)
    assert len(registry) == 12
    assert registry["cls_aid"] == Task("cls_aid", "cls_AID.json", "accuracy", "classification", "{CLS}")
    assert registry["rs_vg"].answer_boxes == "pixels" and registry["rs_vg"].metric == "grounding"
    assert registry["lhrs_bench"].prefix is None


def test_adding_a_task_is_a_config_edit(config, tmp_path):
    overlay = tmp_path / "more.yaml"
    overlay.write_text("eval:\n  tasks:\n    cls_UCM: {file: cls_UCM.json, metric: accuracy, family: classification, prefix: '{CLS}'}\n")
    merged = load_config([ROOT / "config.yaml", overlay])
    assert select_tasks(task_registry(merged["eval"]["tasks"]), ["cls_UCM"])[0].file == "cls_UCM.json"


def test_config_schema_rejects_an_unknown_metric(tmp_path):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("eval:\n  tasks:\n    x: {file: x.json, metric: bleu, family: f}\n")
    with pytest.raises(ConfigError, match="eval.tasks.x.metric"):
        load_config([ROOT / "config.yaml", overlay])


def test_unknown_task_key_is_an_error(config):
    with pytest.raises(ConfigError, match="unknown eval task"):
        select_tasks(task_registry(config["eval"]["tasks"]), ["cls_aid", "nope"])


# --- prompt styles -------------------------------------------------------------------------------------------------

def _texts(messages: list[dict]) -> tuple[str | None, list[dict]]:
    system = messages[0]["content"][0]["text"] if messages[0]["role"] == "system" else None
    return system, messages[-1]["content"]


@pytest.mark.parametrize("stage, style, prefixed, system_key", [
    ("sft", "tinyrs", True, "system_prompt"),
    ("base", "plain", False, "system_prompt"),
    ("cot", "reasoning", True, "reasoning_system_prompt"),
])
def test_prompt_styles(config, stage, style, prefixed, system_key):
    settings = typed_eval_settings(config, stage)
    assert settings.prompt_style == style
    task = task_registry(settings.tasks)["cls_aid"]
    query = question_text("<image>\nWhat is this scene?", task, settings)
    assert query == ("{CLS} What is this scene?" if prefixed else "What is this scene?")
    system, content = _texts(build_messages(query, settings))
    assert system == config["chat"][system_key]
    assert content == [{"type": "image"}, {"type": "text", "text": query}]


def test_style_never_duplicates_a_prefix_already_in_the_data(config):
    settings = typed_eval_settings(config, "sft")
    task = task_registry(settings.tasks)["vqa_LR-pre"]
    assert question_text("{VQA} Is there a road?", task, settings) == "{VQA} Is there a road?"
    assert question_text("{VQA} Is there a road?", task, typed_eval_settings(config, "base")) == "Is there a road?"


def test_unknown_style_is_an_error(config):
    settings = replace(typed_eval_settings(config, "sft"), prompt_style="fancy")
    with pytest.raises(ValueError, match="prompt_style"):
        build_messages("q", settings)


# --- reading eval files ----------------------------------------------------------------------------------------------

def _record(image="a.png", question="What?", answer="forest", **extra) -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            **extra}


def _write(root: Path, name: str, records) -> None:
    (root / name).write_text(json.dumps(records))


def test_malformed_records_are_counted_skips_with_their_index(tmp_path):
    task = Task("lhrs", "lhrs.json", "lhrs_accuracy", "lhrs")
    _write(tmp_path, "lhrs.json", [
        _record(answer="B", type=[1]),                              # 0 fine
        "not a record",                                            # 1
        {"image": "a.png", "conversations": [{"from": "human", "value": "q"}]},  # 2 no answer turn
        _record(answer="B", type=[1], size=[640]),                 # 3 bad size
        _record(answer="forest", type=[1]),                        # 4 no option letter
        _record(answer="B", type=["1"]),                           # 5 bad type
        _record(image=None, answer="B", type=[1]),                 # 6 no image
    ])
    samples, skips = load_samples(task, tmp_path)
    assert [s.index for s in samples] == [0]
    assert [(s.index, s.reason) for s in skips] == [
        (1, "not_an_object"), (2, "bad_conversations"), (3, "bad_size"), (4, "answer_without_option"),
        (5, "bad_type"), (6, "bad_image_field")]
    assert samples[0].types == [1] and samples[0].image_paths == (tmp_path / "lhrs" / "a.png",)


def test_image_path_folder_absolute_or_relative(tmp_path):
    task = Task("cls", "cls.json", "accuracy", "classification")
    root, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    root.mkdir()
    _write(root, "cls.json", [_record(), _record(image_path="imgs/sub"), _record(image_path=str(elsewhere))])
    samples, skips = load_samples(task, root)
    assert not skips
    assert [s.image_paths for s in samples] == [(root / "cls" / "a.png",), (root / "imgs" / "sub" / "a.png",),
                                                (elsewhere / "a.png",)]
    assert [s.filename for s in samples] == ["cls/a.png", "imgs/sub/a.png", str(elsewhere / "a.png")]


def test_max_samples_takes_the_first_records(tmp_path):
    task = Task("cls", "cls.json", "accuracy", "classification")
    _write(tmp_path, "cls.json", [_record(answer=str(i)) for i in range(5)])
    samples, _ = load_samples(task, tmp_path, max_samples=3)
    assert [s.answer for s in samples] == ["0", "1", "2"]


def test_missing_or_broken_file_is_an_error_naming_it(tmp_path):
    task = Task("cls", "cls.json", "accuracy", "classification")
    with pytest.raises(DataError, match="cls.json.*not found"):
        load_samples(task, tmp_path)
    (tmp_path / "cls.json").write_text("{not json")
    with pytest.raises(DataError, match="cls.json: not valid JSON"):
        load_samples(task, tmp_path)
    _write(tmp_path, "cls.json", {"records": []})
    with pytest.raises(DataError, match="JSON array"):
        load_samples(task, tmp_path)


def test_lhrs_type_table_is_the_benchmarks_and_shared():
    from tinyrs.answers import LHRS_TYPES as shared
    from tinyrs.eval.tasks import LHRS_TYPES

    assert LHRS_TYPES is shared  # the demo world imports the same object (tests/test_demo_world.py)
    assert LHRS_TYPES == {1: "identity", 2: "color", 3: "orientation", 4: "shape", 5: "quantity", 6: "area",
                          7: "distance", 8: "resolution", 9: "modality", 10: "location", 11: "reasoning"}
