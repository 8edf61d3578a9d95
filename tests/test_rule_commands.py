"""The commands as the workflow's rules call them: a settings file written from config (tinyrs.config.job_settings)
plus input and output paths, giving what the options give by hand. The data commands: tests/test_data_cli.py."""
from __future__ import annotations

import argparse
import json

import pytest
import yaml

from tinyrs.cli import demo as demo_cli
from tinyrs.cli import main
from tinyrs.cli.options import from_settings
from tinyrs.config import eval_settings, job_settings, load_config, settings_text
from tinyrs.io import MANIFEST_NAME, write_json
from tinyrs.paths import mirror_dir


@pytest.fixture(autouse=True)
def _in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def _config(tmp_path, overlay: dict) -> dict:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return load_config(["config.yaml", path])


def _settings_file(tmp_path, name: str, settings: dict) -> str:
    path = tmp_path / "settings" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(settings_text(settings))
    return str(path)


def test_a_published_model_is_put_in_the_mirror_and_fetched_with_its_settings(tmp_path):
    mirror = tmp_path / "mirror"
    settings = job_settings(_config(tmp_path, {"hub": {"mirror": str(mirror)}}))["model-TinyRS"]
    assert settings == {"stage": "TinyRS", "repo": "aybora/Qwen2-VL-TinyRS", "revision": "main", "mirror": str(mirror),
                        "family": None}   # a published model is not checked against base_model.family
    settings_file = _settings_file(tmp_path, "model-TinyRS", settings)
    model = tmp_path / "models" / "base"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "qwen2_vl"}')
    (model / MANIFEST_NAME).write_text('{"stage": "base"}')

    assert main(["model", "to-mirror", "--settings", settings_file, "--model", str(model / MANIFEST_NAME)]) == 0
    assert (mirror_dir(mirror, "aybora/Qwen2-VL-TinyRS") / "config.json").is_file()
    out = tmp_path / "models" / "TinyRS"
    assert main(["model", "fetch", "--settings", settings_file, "--out", str(out)]) == 0
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert (manifest["stage"], manifest["repo"], manifest["revision"], manifest["mirror"]) == \
        ("TinyRS", "aybora/Qwen2-VL-TinyRS", "main", str(mirror))


def test_the_base_models_settings_say_where_it_comes_from(tmp_path):
    real = job_settings(load_config(["config.yaml"]))["model-base"]
    assert real == {"stage": "base", "repo": "Qwen/Qwen2-VL-2B-Instruct", "revision": "main", "mirror": None,
                    "family": "qwen2-vl"}
    demo = job_settings(load_config(["config.yaml", "profiles/demo/overrides.yaml"]))
    assert demo["model-base"] == {"family": "qwen2-vl", "min_pixels": 3136, "max_pixels": 12544,
                                  "arch": {"rope_theta": 3.0}}
    assert demo["demo-world"] == {"seed": 0, "scale": "tiny", "world": "tinyrs"}
    assert demo["fetch-versad"] == {"dataset": "versad", "repo": "aybora/VHM_VersaD", "revision": "main",
                                    "allow_patterns": ["list_pretrain.json", "*/*.tar"], "unpack_shards": True,
                                    "mirror": "work-demo/demo-hub"}


def test_the_demo_world_takes_seed_scale_and_world_from_its_settings(tmp_path):
    parser = argparse.ArgumentParser()
    demo_cli.register(parser.add_subparsers(dest="command"))
    settings_file = _settings_file(tmp_path, "demo-world", {"seed": 3, "scale": "small", "world": "geovlm-r1"})
    args = parser.parse_args(["demo-world", "--settings", settings_file, "--out", "x"])
    from_settings(args)
    assert (args.seed, args.scale, args.world) == (3, "small", "geovlm-r1")


def test_eval_merge_takes_the_shard_count_from_the_eval_settings(tmp_path, capsys):
    settings = {**eval_settings(load_config(["config.yaml"]), "sft"), "shards": 3}
    settings_file = _settings_file(tmp_path, "eval-sft", settings)
    assert main(["eval", "merge", "--settings", settings_file, "--task", "cls", "--out-dir", str(tmp_path)]) == 2
    assert "shards ['0/3', '1/3', '2/3'] have no metrics file" in capsys.readouterr().err


def test_the_report_takes_its_columns_and_published_models_from_its_settings(tmp_path, capsys):
    settings = job_settings(load_config(["config.yaml"]))["report"]
    assert settings["stages"][-3:] == ["TinyRS", "TinyRS-CoT", "TinyRS-R1"]
    assert settings["grpo_log"] == "work/models/grpo/train_log.json"
    settings["grpo_log"] = None   # no GRPO run here: the reward curves and the reward check are tested elsewhere
    del settings["reward_check"]
    settings_file = _settings_file(tmp_path, "report", settings)
    write_json(tmp_path / "eval" / "sft" / "cls_a.metrics.json",
               {"task": "cls_a", "family": "classification", "primary": "accuracy", "lenient": "accuracy_lenient",
                "n": 10, "skipped": {}, "metrics": {"accuracy": {"value": 0.5, "n": 10, "correct": 5}}})
    assert main(["report", "--settings", settings_file, "--eval-dir", str(tmp_path / "eval"),
                 "--out-dir", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert "| TinyRS-R1 | TinyRS-R1 (lenient) |" in printed
    assert "- TinyRS-R1: `aybora/Qwen2-VL-TinyRS-R1@main`" in printed


@pytest.mark.parametrize(("command", "name", "change", "expected"), [
    (["model", "fetch", "--out", "x"], "model-base", {"revison": "main"}, "unknown key 'revison'"),
    (["model", "to-mirror", "--model", "x"], "model-TinyRS", {"mirror": 1}, "key 'mirror': 1 is not of type"),
    (["data", "fetch", "--out", "x"], "fetch-versad", {"unpack_shards": "true"}, "key 'unpack_shards': 'true'"),
    (["report", "--eval-dir", "x", "--out-dir", "y"], "report", {"external": None}, "key 'external': None"),
    (["eval", "merge", "--task", "cls", "--out-dir", "x"], "eval-sft", {"shards": "3"}, "key 'shards': '3'"),
])
def test_a_command_refuses_a_bad_settings_file_naming_file_and_key(tmp_path, capsys, command, name, change, expected):
    """Each command reads its settings file once, as its settings class, before doing anything."""
    config = load_config(["config.yaml"])
    settings = {**(eval_settings(config, "sft") if name == "eval-sft" else job_settings(config)[name]), **change}
    settings_file = _settings_file(tmp_path, name, settings)
    assert main([*command, "--settings", settings_file]) == 2
    assert f"tinyrs: {settings_file}: {expected}" in capsys.readouterr().err


def test_a_settings_option_covers_only_attributes_of_its_class():
    from tinyrs.cli.options import add_settings_option
    from tinyrs.settings import DemoWorldSettings

    with pytest.raises(TypeError, match="DemoWorldSettings has no attribute size"):
        add_settings_option(argparse.ArgumentParser(), "x", DemoWorldSettings, {"scale": "size"})
