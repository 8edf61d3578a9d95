"""Published checkpoints evaluated in the same harness: config (eval.external_models named in eval.stages), their
eval settings, and the mirror they are fetched from."""
from __future__ import annotations

import json

import pytest
import yaml

from tinyrs.config import ConfigError, all_stage_settings, eval_settings, external_models, load_config
from tinyrs.io import MANIFEST_NAME

DEMO = "profiles/demo/overrides.yaml"
PUBLISHED = {"TinyRS": ("aybora/Qwen2-VL-TinyRS", "tinyrs"), "TinyRS-CoT": ("aybora/Qwen2-VL-TinyRS-CoT", "reasoning"),
             "TinyRS-R1": ("aybora/Qwen2-VL-TinyRS-R1", "reasoning")}


@pytest.fixture(autouse=True)
def _in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def _with(tmp_path, overlay: dict) -> dict:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return load_config(["config.yaml", path])


def test_the_real_config_evaluates_the_published_tinyrs_models_after_the_pipeline():
    config = load_config(["config.yaml"])
    assert config["eval"]["stages"] == ["base", "pretrain", "sft", "cot", "grpo", *PUBLISHED]
    assert {name: (spec["repo"], spec["prompt_style"]) for name, spec in external_models(config).items()} == PUBLISHED
    # listed, but not evaluated: the base column is the same model
    assert config["eval"]["external_models"]["Qwen2-VL-2B-Instruct"]["repo"] == config["base_model"]["repo"]
    assert "Qwen2-VL-2B-Instruct" not in external_models(config)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_a_published_model_gets_eval_settings_like_a_stage(name):
    config = load_config(["config.yaml"])
    settings = eval_settings(config, name)
    repo, style = PUBLISHED[name]
    assert settings["prompt_style"] == style and settings["stage"] == name
    assert settings["model"] == {"repo": repo, "revision": "main"}
    assert settings["tasks"] == config["eval"]["tasks"] and settings["backend"] == config["eval"]["backend"]
    assert f"eval-{name}" in all_stage_settings(config)


def test_adding_a_published_model_changes_no_pipeline_stage_settings(tmp_path):
    """eval.external_models is not part of a stage's eval settings: adding a column reruns none of the others."""
    before = all_stage_settings(load_config(["config.yaml"]))
    after = all_stage_settings(_with(tmp_path, {"eval": {
        "stages": ["base", "pretrain", "sft", "cot", "grpo", "TinyRS", "TinyRS-CoT", "TinyRS-R1", "Other"],
        "external_models": {"Other": {"repo": "someone/Other-VL", "revision": "v1", "prompt_style": "plain"}}}}))
    assert set(after) - set(before) == {"eval-Other"}
    assert all(after[name] == settings for name, settings in before.items())


def test_demo_evaluates_its_stand_in():
    demo = load_config(["config.yaml", DEMO])
    assert list(external_models(demo)) == ["published-demo"]
    assert eval_settings(demo, "published-demo")["prompt_style"] == eval_settings(demo, "base")["prompt_style"]


@pytest.mark.parametrize("overlay, message", [
    ({"eval": {"stages": ["base", "TinyRS-XL"]}},
     "'TinyRS-XL' is neither a pipeline stage"),
    ({"eval": {"external_models": {"sft": {"repo": "a/b", "revision": "main", "prompt_style": "plain"}}}},
     "key 'eval.external_models.sft': 'sft' is the name of a pipeline stage"),
    ({"eval": {"external_models": {"Copy": {"repo": "other/Qwen2-VL-TinyRS", "revision": "main",
                                            "prompt_style": "plain"}}}},
     "would share the mirror folder 'Qwen2-VL-TinyRS'"),
    ({"eval": {"external_models": {"a/b": {"repo": "a/b", "revision": "main", "prompt_style": "plain"}}}},
     "eval.external_models"),
    ({"eval": {"external_models": {"X": {"repo": "no-owner", "revision": "main", "prompt_style": "plain"}}}},
     "eval.external_models.X.repo"),
    ({"eval": {"external_models": {"X": {"repo": "a/b", "revision": "main", "prompt_style": "fancy"}}}},
     "eval.external_models.X.prompt_style"),
    ({"eval": {"stages": ["base", "base"]}}, "eval.stages"),
])
def test_bad_published_model_entries_name_the_key(tmp_path, overlay, message):
    with pytest.raises(ConfigError, match="overlay.yaml") as err:
        _with(tmp_path, overlay)
    assert message in str(err.value)


def test_a_model_put_in_a_mirror_is_fetched_from_it(tmp_path):
    """The demo's stand-in path, and an air-gapped site's: a model directory laid out as a Hub repo of the mirror,
    then `tinyrs model fetch --mirror` (what the external_model rule runs) takes it from there."""
    from tinyrs.cli import main
    from tinyrs.model.fetch import mirror_dir

    model = tmp_path / "models" / "base"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "qwen2_vl"}')
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "sub" / "x.txt").write_text("x")
    (model / MANIFEST_NAME).write_text('{"stage": "base"}')
    mirror = tmp_path / "mirror"
    assert main(["model", "to-mirror", "--model", str(model / MANIFEST_NAME), "--repo", "owner/Tiny-Published",
                 "--mirror", str(mirror)]) == 0
    placed = mirror_dir(mirror, "owner/Tiny-Published")
    assert placed == mirror / "Tiny-Published"
    assert sorted(p.relative_to(placed).as_posix() for p in placed.rglob("*") if p.is_file()) == \
        ["config.json", "model.safetensors", "sub/x.txt"]                    # no tinyrs manifest in a Hub repo
    assert not list(mirror.glob(".*"))                                      # nothing half-written left behind

    out = tmp_path / "models" / "TinyRS"
    assert main(["model", "fetch", "--repo", "owner/Tiny-Published", "--revision", "main", "--mirror", str(mirror),
                 "--stage", "TinyRS", "--out", str(out)]) == 0
    assert (out / "model.safetensors").read_bytes() == b"weights"
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert (manifest["stage"], manifest["repo"], manifest["mirror"]) == ("TinyRS", "owner/Tiny-Published", str(mirror))

    # putting it there again replaces the folder whole
    (model / "model.safetensors").write_bytes(b"new weights")
    (model / "sub" / "x.txt").unlink()
    assert main(["model", "to-mirror", "--model", str(model), "--repo", "owner/Tiny-Published",
                 "--mirror", str(mirror)]) == 0
    assert (placed / "model.safetensors").read_bytes() == b"new weights" and not (placed / "sub" / "x.txt").exists()


def test_doctor_finds_a_published_model_where_the_workflow_puts_it():
    from tinyrs.preflight import workflow_inputs

    config = load_config(["config.yaml"])
    assert workflow_inputs(config, "eval-TinyRS-R1")["--model"] == f"{config['workdir']}/models/TinyRS-R1/{MANIFEST_NAME}"
