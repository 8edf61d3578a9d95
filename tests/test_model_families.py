"""Base-model families (``base_model.family``): each one builds offline, loads through the common path, renders
its chat, trains, generates, and plans the pipeline. LR groups, freeze flags and packed batches are tested for every
family in tests/test_sft.py, GRPO in tests/test_grpo_train.py."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from tinyrs import chat
from tinyrs.config import load_config, typed_eval_settings, typed_stage_settings
from tinyrs.model.families import DEFAULT_FAMILY, FAMILIES, family_of
from tinyrs.model.load import load_model, load_processor
from tinyrs.model.tiny import TINY_ARCH

EACH_FAMILY = pytest.mark.parametrize("family", list(FAMILIES))
OTHER_FAMILY = "qwen2.5-vl"
IMAGE_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"


@pytest.fixture()
def image(tmp_path):
    def make(size=(112, 112), name="img.jpg") -> str:
        path = tmp_path / name
        Image.new("RGB", size, (30, 60, 200)).save(path)
        return str(path)
    return make


def test_the_schema_and_config_name_exactly_the_families(repo_root):
    schema = yaml.safe_load((repo_root / "tinyrs/schema/config.schema.yaml").read_text())
    assert schema["properties"]["base_model"]["properties"]["family"]["enum"] == list(FAMILIES)
    real = load_config([repo_root / "config.yaml"])["base_model"]
    assert (real["family"], real["repo"]) == (DEFAULT_FAMILY, FAMILIES[DEFAULT_FAMILY].example_repo)


@EACH_FAMILY
def test_the_tiny_model_builds_offline_and_loads_through_the_common_path(tiny_model_of, family, tmp_path):
    spec = FAMILIES[family]
    model, processor = load_model(tiny_model_of(family)), load_processor(tiny_model_of(family))
    assert type(model).__name__ == spec.model_class and type(processor).__name__ == spec.processor_class
    assert model.config.model_type == spec.model_type and family_of(model.config) is spec
    model.save_pretrained(tmp_path)
    again = load_model(tmp_path).state_dict()
    assert all(torch.equal(tensor, again[name]) for name, tensor in model.state_dict().items())


def test_qwen2_5_vl_has_its_own_vision_tower(tiny_model_of):
    """Window attention (2 x 2 windows on a 112-pixel image) in all blocks but the last, RMSNorm, SwiGLU."""
    visual = load_model(tiny_model_of(OTHER_FAMILY)).model.visual
    assert (visual.window_size, visual.fullatt_block_indexes) == (56, [2])
    block = visual.blocks[0]
    assert "RMSNorm" in type(block.norm1).__name__ and hasattr(block.mlp, "gate_proj")


def _top_modules(model) -> set[str]:
    """Parameter names cut after the first part below ``visual`` or ``language_model``."""
    return {".".join(name.split(".")[:3]) for name, _ in model.named_parameters()}


def test_the_families_share_module_paths_and_image_rope_positions(tiny_model_of, image):
    """What the optimizer groups and the packed positions rely on is the same in both families (transformers 5.19):
    the module paths, and ``get_rope_index``'s positions for text with images."""
    models = {family: load_model(tiny_model_of(family)) for family in FAMILIES}
    paths = {family: _top_modules(model) for family, model in models.items()}
    assert all(p == paths[DEFAULT_FAMILY] for p in paths.values())
    assert paths[DEFAULT_FAMILY] == {"model.visual.patch_embed", "model.visual.blocks", "model.visual.merger",
                                     "model.language_model.embed_tokens", "model.language_model.layers",
                                     "model.language_model.norm"}  # lm_head: tied to embed_tokens
    processor = load_processor(tiny_model_of(DEFAULT_FAMILY))
    assert load_processor(tiny_model_of(OTHER_FAMILY)).tokenizer.get_vocab() == processor.tokenizer.get_vocab()
    text = chat.render(processor, chat.prompt_messages("<image>\nWhat is it?<image>", None, 2), True)
    inputs = processor(text=[text], images=[Image.open(image((112, 56), "a.jpg")), Image.open(image())],
                       return_tensors="pt")
    positions = [model.model.get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                            image_grid_thw=inputs["image_grid_thw"])[0] for model in models.values()]
    assert all(torch.equal(p, positions[0]) for p in positions)


@EACH_FAMILY
def test_the_chat_template_renders_an_image_turn_as_the_processor_expects(tiny_model_of, family, image):
    from tinyrs.eval.backends.lmdeploy import image_block

    processor = load_processor(tiny_model_of(family))
    messages = chat.prompt_messages("{CLS} What is it?", "Be brief.")
    text = chat.render(processor, messages, add_generation_prompt=True)
    assert text == (f"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n{IMAGE_BLOCK}{{CLS}} What is it?"
                    "<|im_end|>\n<|im_start|>assistant\n")
    assert image_block(processor) == IMAGE_BLOCK
    inputs = processor(text=[text], images=[Image.open(image((224, 112)))], return_tensors="pt")
    image_tokens = inputs["input_ids"][0] == processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = processor.image_processor.merge_size
    assert 0 < int(image_tokens.sum()) == int(inputs["image_grid_thw"].prod()) // merge**2
    assert torch.equal(inputs["mm_token_type_ids"][0].bool(), image_tokens)
    with torch.no_grad():
        assert torch.isfinite(load_model(tiny_model_of(family))(**inputs).logits).all()


@EACH_FAMILY
@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "packed"])
def test_sft_steps_through_the_trainer_lower_the_loss(repo_root, tiny_model_of, family, padding_free,
                                                      tiny_sft_manifest, tmp_path):
    from tinyrs.sft.trainer import train

    config = load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"])
    settings = dataclasses.replace(typed_stage_settings(config, "sft"), max_steps=16, logging_steps=1, report_to=[],
                                   max_pixels=112 * 112, padding_free=padding_free)
    summary = train(settings, str(tiny_model_of(family)), str(tiny_sft_manifest), str(tmp_path / "out"),
                    str(tmp_path / "checkpoints"))
    losses = [entry["loss"] for entry in json.loads((tmp_path / "out" / "train_log.json").read_text())
              if "loss" in entry]
    assert summary["steps"] == 16 and len(losses) == 16
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses
    assert family_of(load_model(tmp_path / "out").config).name == family


@EACH_FAMILY
def test_generation_through_the_transformers_eval_backend(repo_root, tiny_model_of, family, image):
    from tinyrs.eval.backends.base import make_backend

    settings = typed_eval_settings(load_config([repo_root / "config.yaml"]), "sft")
    backend = make_backend(dataclasses.replace(settings, backend="transformers", precision="fp32",
                                               attn_implementation="sdpa", max_new_tokens=6), tiny_model_of(family))
    batch = [(chat.prompt_messages(question, "Be brief."), [Image.open(image(size, f"{n}.jpg"))])
             for n, (question, size) in enumerate((("{CLS} What is it?", (112, 112)),
                                                   ("{VQA} Is there a ship in the harbour?", (224, 112))))]
    answers = backend.generate(batch)
    assert len(answers) == 2 and all(isinstance(answer, str) for answer in answers)
    alone = backend.generate(batch[1:])
    assert alone == answers[1:]  # left padding beside a shorter prompt changes nothing


def test_a_model_of_no_known_family_is_refused_before_training():
    """Grouping another family's parameters by Qwen-VL's names could put a merger in the vision group unnoticed."""
    from types import SimpleNamespace

    from tinyrs.config import ConfigError
    from tinyrs.sft import optim

    model = torch.nn.Linear(2, 2)
    model.config = SimpleNamespace(model_type="qwen3_vl")
    with pytest.raises(ConfigError, match="model type 'qwen3_vl' is none of the families tinyrs knows"):
        optim.apply_freezing(model, freeze_llm=False, freeze_vision_tower=False, tune_merger=True)


def _cli(*args: str) -> int:
    from tinyrs.cli import main

    return main(list(args))


def test_fetch_checks_the_base_models_family(tiny_model_of, tmp_path, capsys):
    from tinyrs.io import read_manifest
    from tinyrs.model.fetch import put_in_mirror

    mirror = tmp_path / "mirror"
    put_in_mirror(tiny_model_of(OTHER_FAMILY), "Qwen/Qwen2.5-VL-3B-Instruct", mirror)
    fetch = ("model", "fetch", "--repo", "Qwen/Qwen2.5-VL-3B-Instruct", "--mirror", str(mirror))
    assert _cli(*fetch, "--family", DEFAULT_FAMILY, "--out", str(tmp_path / "wrong")) == 2
    assert ("base_model.repo Qwen/Qwen2.5-VL-3B-Instruct is a 'qwen2_5_vl' model, but base_model.family qwen2-vl "
            "needs a 'qwen2_vl' model (such as Qwen/Qwen2-VL-2B-Instruct): set base_model.family: qwen2.5-vl"
            ) in capsys.readouterr().err
    assert _cli(*fetch, "--family", OTHER_FAMILY, "--out", str(tmp_path / "base")) == 0
    assert read_manifest(tmp_path / "base")["family"] == OTHER_FAMILY


def test_tiny_command_builds_the_family_it_is_given(tmp_path):
    corpus = tmp_path / "list.json"
    corpus.write_text(json.dumps([{"conversations": [{"from": "human", "value": "What is it?"},
                                                     {"from": "gpt", "value": "water"}]}] * 20))
    assert _cli("model", "tiny", "--family", OTHER_FAMILY, "--out", str(tmp_path / "m"), "--corpus", str(corpus)) == 0
    manifest = json.loads((tmp_path / "m" / "tinyrs_manifest.json").read_text())
    assert manifest["family"] == OTHER_FAMILY
    assert json.loads((tmp_path / "m" / "config.json").read_text())["model_type"] == FAMILIES[OTHER_FAMILY].model_type


def test_tiny_command_takes_the_architecture_the_config_changes(tmp_path, capsys):
    """base_model.tiny_arch (the TinyRS demo sets rope_theta 3) reaches the built model through the settings file;
    a key the tiny model does not have is a config error naming it, not a traceback."""
    from tinyrs.config import job_settings

    corpus = tmp_path / "list.json"
    corpus.write_text(json.dumps([{"conversations": [{"from": "human", "value": "What is it?"},
                                                     {"from": "gpt", "value": "water"}]}] * 20))
    settings = job_settings(load_config(["config.yaml", "profiles/demo/overrides.yaml"]))["model-base"]
    assert settings["arch"] == {"rope_theta": 3.0}
    (tmp_path / "model-base.json").write_text(json.dumps(settings))
    command = ("model", "tiny", "--settings", str(tmp_path / "model-base.json"), "--corpus", str(corpus))
    assert _cli(*command, "--out", str(tmp_path / "m")) == 0
    text_config = json.loads((tmp_path / "m" / "config.json").read_text())["text_config"]
    assert text_config["rope_parameters"]["rope_theta"] == 3.0
    assert text_config["hidden_size"] == TINY_ARCH["text_hidden"]  # the rest as TINY_ARCH has it

    (tmp_path / "model-base.json").write_text(json.dumps(settings | {"arch": {"rope_base": 3.0}}))
    assert _cli(*command, "--out", str(tmp_path / "wrong")) == 2
    assert "base_model.tiny_arch: unknown key(s) rope_base" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists()


def test_the_schemas_tiny_arch_keys_are_the_tiny_models():
    from tinyrs.config import SCHEMA_PATH

    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    keys = schema["properties"]["base_model"]["properties"]["tiny_arch"]["propertyNames"]["enum"]
    assert set(keys) == set(TINY_ARCH)


def _dry_run(repo_root: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["timeout", "-k", "10", "120", sys.executable, "-m", "snakemake", "-n", "-p", *args],
                          cwd=repo_root, env=env, capture_output=True, text=True)


def test_the_demo_and_the_real_run_plan_the_pipeline_for_another_family(repo_root, tmp_path):
    demo = _dry_run(repo_root, "--profile", "profiles/demo", "--config", f"workdir={tmp_path}/demo",
                    f"base_model={{family: {OTHER_FAMILY}}}")  # merged into the profile's base_model
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"tinyrs model tiny --settings {tmp_path}/demo/settings/model-base.json " in demo.stdout
    from tinyrs.config import job_settings, load_config

    demo_config = load_config(["config.yaml", "profiles/demo/overrides.yaml"], {"base_model": {"family": OTHER_FAMILY}})
    assert job_settings(demo_config)["model-base"]["family"] == OTHER_FAMILY
    for rule in ("pretrain", "sft", "cot", "grpo", "eval_stage", "report"):
        assert rule in demo.stdout, rule

    overlay = tmp_path / "qwen2.5.yaml"
    overlay.write_text(yaml.safe_dump({"base_model": {"family": OTHER_FAMILY, "repo": "Qwen/Qwen2.5-VL-3B-Instruct"}}))
    real = _dry_run(repo_root, "--cores", "1", "--configfile", "config.yaml", str(overlay), "--config",
                    f"workdir={tmp_path}/real")
    assert real.returncode == 0, real.stderr[-3000:]
    assert (f"tinyrs model fetch --settings {tmp_path}/real/settings/model-base.json "
            f"--out {tmp_path}/real/models/base ") in real.stdout
    real_config = load_config(["config.yaml", overlay])
    assert job_settings(real_config)["model-base"] == {
        "stage": "base", "repo": "Qwen/Qwen2.5-VL-3B-Instruct", "revision": "main", "mirror": None,
        "family": OTHER_FAMILY}

    bad = _dry_run(repo_root, "--cores", "1", "--config", f"workdir={tmp_path}/bad", "base_model={family: qwen3-vl}")
    assert bad.returncode != 0 and "key 'base_model.family'" in bad.stdout + bad.stderr
