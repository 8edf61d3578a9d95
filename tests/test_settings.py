"""Typed settings of every job (stages, eval columns, data lists, downloads, models, the demo world, the report): built
once from a settings file, which must hold exactly its kind's keys and types."""
from __future__ import annotations

import json

import pytest

from tinyrs.config import (
    all_stage_settings,
    eval_settings,
    job_settings,
    load_config,
    read_eval_settings,
    read_stage_settings,
    settings_text,
    stage_kind,
    stage_settings,
    stages,
)
from tinyrs.kinds import KINDS
from tinyrs.settings import (
    DataListSettings,
    DemoWorldSettings,
    EvalSettings,
    FetchSettings,
    GrpoSettings,
    ModelSettings,
    OversampleSettings,
    ReportSettings,
    RewardCheckSettings,
    SettingsError,
    SftSettings,
    TinyModelSettings,
)

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


def _job_class(config, name: str):
    """The class the command reading ``settings/<name>.json`` builds from it."""
    if name == "model-base":
        return TinyModelSettings if config["base_model"]["source"] == "tiny" else ModelSettings
    fixed = {"demo-world": DemoWorldSettings, "report": ReportSettings, "reward-check": RewardCheckSettings}
    by_prefix = {"fetch-": FetchSettings, "data-": DataListSettings, "model-": ModelSettings}
    return fixed.get(name) or next(cls for prefix, cls in by_prefix.items() if name.startswith(prefix))


def test_every_other_jobs_settings_file_round_trips(config, tmp_path):
    """Downloads, data lists, the base and published models, the demo world and the report: each file the workflow
    writes reads back as its class and writes back byte for byte."""
    plain = {**job_settings(config), **{name: settings for name, settings in all_stage_settings(config).items()
                                       if name.startswith("data-")}}
    expected = {"fetch-versad", "fetch-eval", "data-sft", "model-base", "report"}
    assert expected <= set(plain) and ("demo-world" in plain) == bool(config["demo_world"])
    for name, settings in plain.items():
        path = tmp_path / f"{name}.json"
        path.write_text(settings_text(settings))
        typed = _job_class(config, name).from_file(path)
        assert typed.to_dict() == settings
        assert settings_text(typed.to_dict()) == path.read_text()


def test_a_lists_oversample_section_is_typed_and_may_be_null(repo_root):
    demo = all_stage_settings(load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"]))
    sft = DataListSettings.from_dict(demo["data-sft"], "data-sft.json")
    assert isinstance(sft.oversample, OversampleSettings) and sft.oversample.factors == {"DOIR-RSVG": 2.0,
                                                                                           "RSVQA_HR": 1.5}
    assert DataListSettings.from_dict(demo["data-cot"], "data-cot.json").oversample.factors is None
    real = all_stage_settings(load_config([repo_root / "config.yaml"]))
    assert DataListSettings.from_dict(real["data-sft"], "data-sft.json").oversample is None


@pytest.fixture
def data_sft(repo_root):
    config = load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"])
    return all_stage_settings(config)["data-sft"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"check_image": "exists"}, "unknown key 'check_image'"),
    ({"allow_empty": "false"}, "key 'allow_empty': 'false' is not of type bool"),
    ({"oversample": {"seed": 0, "default": 1.0, "factors": {"UCM": "2"}}}, "key 'oversample.factors': "),
    ({"oversample": {"seed": 0, "default": 1.0, "factors": None}}, "key 'oversample.factors': None is its default"),
    ({"oversample": {"default": 1.0}}, "missing key 'oversample.seed'"),
    ({"oversample": 2.0}, "key 'oversample': expected a mapping, got float"),
])
def test_a_bad_data_list_settings_file_is_an_error_naming_file_and_key(data_sft, tmp_path, change, expected):
    path = tmp_path / "data-sft.json"
    path.write_text(json.dumps({**data_sft, **change}))
    with pytest.raises(SettingsError, match=f"{path}: {expected}"):
        DataListSettings.from_file(path)


@pytest.mark.parametrize(("cls", "settings", "expected"), [
    (DemoWorldSettings, {"seed": 0, "scale": "tiny", "world": "tinyrs", "size": 3}, "unknown key 'size'"),
    (DemoWorldSettings, {"seed": 0.5, "scale": "tiny", "world": "tinyrs"}, "key 'seed': 0.5 is not of type int"),
    (TinyModelSettings, {"family": "qwen2-vl", "min_pixels": 3136}, "missing key 'max_pixels'"),
    (ModelSettings, {"stage": "x", "repo": "a/b", "revision": "main", "mirror": None, "family": 2},
     "key 'family': 2 is not of type"),
    (FetchSettings, {"dataset": "eval", "repo": "a/b", "revision": "main", "allow_patterns": "**",
                     "unpack_shards": False, "mirror": None}, "key 'allow_patterns': '\\*\\*' is not of type list"),
    (ReportSettings, {"stages": ["sft"], "grpo_log": None, "external": {"TinyRS": None}}, "key 'external': "),
])
def test_a_bad_job_settings_file_is_an_error_naming_file_and_key(tmp_path, cls, settings, expected):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(SettingsError, match=f"{path}: {expected}"):
        cls.from_file(path)


def test_a_settings_file_that_is_no_json_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("{stages: [sft]}")
    with pytest.raises(SettingsError, match=f"{path}: not valid JSON"):
        ReportSettings.from_file(path)
