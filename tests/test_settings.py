"""Typed stage and eval settings: built once from a settings file, which must hold exactly its kind's keys and types."""
from __future__ import annotations

import json

import pytest

from tinyrs.config import (
    eval_settings,
    load_config,
    read_eval_settings,
    read_stage_settings,
    settings_text,
    stage_kind,
    stage_settings,
    stages,
)
from tinyrs.kinds import KINDS
from tinyrs.settings import EvalSettings, GrpoSettings, SettingsError, SftSettings

CONFIGS = {"real": ["config.yaml"], "demo": ["config.yaml", "profiles/demo/overrides.yaml"]}


@pytest.fixture(params=list(CONFIGS))
def config(request, repo_root):
    return load_config([repo_root / path for path in CONFIGS[request.param]])


def test_every_stage_round_trips_to_the_same_settings_file(config, tmp_path):
    for stage in stages(config):
        plain = stage_settings(config, stage)
        path = tmp_path / f"{stage}.json"
        path.write_text(settings_text(plain))
        typed = read_stage_settings(path)
        assert type(typed) is stage_kind(config, stage).settings
        assert typed.to_dict() == plain
        assert settings_text(typed.to_dict()) == path.read_text()


def test_each_kind_has_its_settings_class():
    assert KINDS["sft"].settings is SftSettings and KINDS["grpo"].settings is GrpoSettings


def _file(tmp_path, settings: dict):
    path = tmp_path / "grpo.json"
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture
def grpo(repo_root):
    return stage_settings(load_config([repo_root / "config.yaml"]), "grpo")


def test_an_unknown_key_is_an_error_naming_file_and_key(grpo, tmp_path):
    path = _file(tmp_path, {**grpo, "learning_rat": 1e-6})
    with pytest.raises(SettingsError, match=f"{path}: unknown key 'learning_rat'"):
        read_stage_settings(path)


def test_a_missing_key_is_an_error_naming_file_and_key(grpo, tmp_path):
    del grpo["judge"]["timeout_s"]
    path = _file(tmp_path, grpo)
    with pytest.raises(SettingsError, match=f"{path}: missing key 'judge.timeout_s'"):
        read_stage_settings(path)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("num_generations", "4", "key 'num_generations': '4' is not of type int"),
    ("skip_open_ended", 0, "key 'skip_open_ended': 0 is not of type bool"),
    ("learning_rate", True, "key 'learning_rate': True is not of type float"),
    ("report_to", "wandb", "key 'report_to': 'wandb' is not of type list\\[str\\]"),
    ("chat", None, "key 'chat': expected a mapping, got NoneType"),
])
def test_a_wrongly_typed_value_is_an_error_naming_file_and_key(grpo, tmp_path, key, value, expected):
    path = _file(tmp_path, {**grpo, key: value})
    with pytest.raises(SettingsError, match=f"{path}: {expected}"):
        read_stage_settings(path)


def test_a_nested_value_is_checked(grpo, tmp_path):
    grpo["rewards"]["by_answer_type"]["1"] = {"closed": "1.0"}
    path = _file(tmp_path, grpo)
    with pytest.raises(SettingsError, match=f"{path}: key 'rewards.by_answer_type'"):
        read_stage_settings(path)


def test_an_int_is_a_float_and_null_where_allowed(grpo, tmp_path):
    settings = read_stage_settings(_file(tmp_path, {**grpo, "learning_rate": 1, "deepspeed": None}))
    assert settings.learning_rate == 1 and settings.deepspeed is None


def test_every_eval_column_round_trips_to_the_same_settings_file(config, tmp_path):
    """Stages' columns and published models' (whose settings alone name a ``model``)."""
    columns = config["eval"]["stages"]
    assert {"model" in eval_settings(config, column) for column in columns} == {True, False}
    for column in columns:
        plain = eval_settings(config, column)
        path = tmp_path / f"eval-{column}.json"
        path.write_text(settings_text(plain))
        typed = read_eval_settings(path)
        assert type(typed) is EvalSettings and typed.chat.answer_tag == config["chat"]["answer_tag"]
        assert typed.to_dict() == plain
        assert settings_text(typed.to_dict()) == path.read_text()


@pytest.fixture
def eval_sft(repo_root):
    return eval_settings(load_config([repo_root / "config.yaml"]), "sft")


@pytest.mark.parametrize(("change", "expected"), [
    ({"batch_size": "16"}, "key 'batch_size': '16' is not of type int"),
    ({"max_sample": 5}, "unknown key 'max_sample'"),
    ({"model": None}, "key 'model': None is its default: leave the key out"),   # it would not be written back
    ({"model": "aybora/Qwen2-VL-TinyRS"}, "key 'model': 'aybora/Qwen2-VL-TinyRS' is not of type"),
    ({"chat": {"answer_tag": "answer"}}, "missing key 'chat.system_prompt'"),
])
def test_a_bad_eval_settings_file_is_an_error_naming_file_and_key(eval_sft, tmp_path, change, expected):
    path = tmp_path / "eval-sft.json"
    path.write_text(json.dumps({**eval_sft, **change}))
    with pytest.raises(SettingsError, match=f"{path}: {expected}"):
        read_eval_settings(path)


def test_an_eval_settings_file_may_leave_out_only_the_model(eval_sft, tmp_path):
    path = tmp_path / "eval-sft.json"
    path.write_text(json.dumps(eval_sft))
    assert read_eval_settings(path).model is None
    del eval_sft["tasks"]
    path.write_text(json.dumps(eval_sft))
    with pytest.raises(SettingsError, match=f"{path}: missing key 'tasks'"):
        read_eval_settings(path)
