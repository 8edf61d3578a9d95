"""config.yaml and its overlays: merged, validated, errors that name the key and the file."""
from __future__ import annotations

import json

import pytest
import yaml

from tinyrs.config import ConfigError, all_stage_settings, load_config, stage_settings, write_stage_settings

DEMO = "profiles/demo/overrides.yaml"


@pytest.fixture(autouse=True)
def _in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def test_real_and_demo_configs_are_valid():
    real = load_config(["config.yaml"])
    demo = load_config(["config.yaml", DEMO])
    assert real["base_model"]["repo"] == "Qwen/Qwen2-VL-2B-Instruct"
    assert demo["base_model"]["source"] == "tiny"
    # the paper's settings (REFERENCE.md §1)
    sft = stage_settings(real, "sft")
    assert (sft["learning_rate"], sft["merger_lr"], sft["vision_lr"]) == (1e-5, 1e-5, 2e-6)
    assert (sft["global_batch_size"], sft["per_device_batch_size"]) == (128, 16)
    assert sft["min_pixels"] == 512 * 28 * 28 and sft["max_pixels"] == 1280 * 28 * 28
    assert real["grpo_defaults"]["num_generations"] == 4 and real["grpo_defaults"]["beta"] == 0.001


def test_unknown_key_names_key_and_file(tmp_path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"train_defaults": {"learnig_rate": 1e-4}}))
    with pytest.raises(ConfigError) as err:
        load_config(["config.yaml", overlay])
    assert "unknown key 'train_defaults.learnig_rate'" in str(err.value)
    assert str(overlay) in str(err.value)


def test_mistyped_value_names_key(tmp_path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"grpo_defaults": {"num_generations": "four"}}))
    with pytest.raises(ConfigError) as err:
        load_config(["config.yaml", overlay])
    assert "grpo_defaults.num_generations" in str(err.value) and str(overlay) in str(err.value)


def test_stage_references_are_checked(tmp_path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"stages": {"sft": {"init": "cot", "data": "nope"}}}))
    with pytest.raises(ConfigError) as err:
        load_config(["config.yaml", overlay])
    message = str(err.value)
    assert f"{overlay}: key 'stages.sft.data': 'nope'" in message
    assert f"{overlay}: key 'stages.sft.init': 'cot'" in message


@pytest.mark.parametrize(("stage", "message"), [
    ({"kind": "dpo", "init": "sft", "data": "sft"}, "key 'stages.extra.kind': 'dpo' is not one of ['sft', 'grpo']"),
    ({"kind": "grpo", "init": "extra", "data": "grpo"}, "key 'stages.extra.init': 'extra' must be one of"),
    ({"kind": "grpo", "init": "cot", "data": "sft2"}, "key 'stages.extra.data': 'sft2' is not a key of hub.datasets"),
    ({"kind": "sft", "init": "cot", "data": "grpo", "system_prompt": "default"},
     "key 'stages.extra.data': 'grpo' is not a key of data.lists"),
    ({"kind": "sft", "init": "cot", "data": "cot", "system_prompt": "default", "beta": 0.1},
     "unknown key 'stages.extra.beta'"),   # a GRPO setting on an SFT stage
    ({"kind": "grpo", "init": "cot", "data": "grpo", "freeze_llm": True}, "unknown key 'stages.extra.freeze_llm'"),
])
def test_a_stage_entry_is_checked_against_its_kind(tmp_path, stage, message):
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"stages": {"extra": stage}}))
    with pytest.raises(ConfigError) as err:
        load_config(["config.yaml", overlay])
    assert f"{overlay}: {message}" in str(err.value)


def test_a_stage_is_one_config_entry(tmp_path):
    """A stage added by an overlay gets its kind's defaults and a settings file; one set to null is gone."""
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"stages": {"cot": None, "grpo": {"init": "sft"},
                                                  "sft2": {"kind": "sft", "init": "sft", "data": "sft",
                                                           "system_prompt": "default", "epochs": 2}},
                                       "eval": {"stages": ["base", "sft", "sft2", "grpo"]}}))
    with pytest.raises(ConfigError, match="no prompt style for evaluated stage 'sft2'"):
        load_config(["config.yaml", overlay])
    config = load_config(["config.yaml", overlay], {"eval": {"prompt_style": {"sft2": "tinyrs"}}})
    settings = all_stage_settings(config)
    assert "cot" not in settings and settings["grpo"]["init"] == "sft"
    assert settings["sft2"] == {**config["train_defaults"], "kind": "sft", "init": "sft", "data": "sft",
                                "system_prompt": "default", "epochs": 2, "stage": "sft2", "chat": config["chat"]}
    assert settings["eval-sft2"]["prompt_style"] == "tinyrs"


def test_missing_config_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([tmp_path / "absent.yaml"])


def test_settings_files_change_only_when_their_stage_changes(tmp_path):
    config = load_config(["config.yaml", DEMO])
    paths = {p.stem: p for p in write_stage_settings(config, tmp_path)}
    mtimes = {name: p.stat().st_mtime_ns for name, p in paths.items()}
    config["grpo_defaults"]["beta"] = 0.1  # the demo runs with 0.04
    write_stage_settings(config, tmp_path)
    changed = {name for name, p in paths.items() if p.stat().st_mtime_ns != mtimes[name]}
    assert changed == {"grpo"}
    assert json.loads(paths["grpo"].read_text())["beta"] == 0.1
    assert set(all_stage_settings(config)) == set(paths)


def test_cli_reports_config_errors_with_exit_code_2(tmp_path, capsys):
    from tinyrs.cli import main

    overlay = tmp_path / "bad.yaml"
    overlay.write_text("eval: {backend: tensorrt}\n")
    assert main(["config", "check", "--config", "config.yaml", "--config", str(overlay)]) == 2
    assert "eval.backend" in capsys.readouterr().err
