"""The trainer arguments built from the real recipe are accepted by the installed transformers and TRL.

The GRPO image pins transformers 5.19 and the SFT image 5.23, so this file runs under both: it checks
against whatever transformers is installed, never against one version's field list.
"""
from __future__ import annotations

import dataclasses

import pytest

from tinyrs import runtime
from tinyrs.config import load_config, typed_stage_settings
from tinyrs.settings import StageSettings


def _cpu(settings: StageSettings) -> StageSettings:
    """The recipe's settings less what needs a cluster: DeepSpeed (a launcher) and the remote loggers."""
    return dataclasses.replace(settings, deepspeed=None, report_to=[])


@pytest.fixture(scope="module")
def recipe(repo_root):
    config = load_config([repo_root / "config.yaml"])
    return {stage: _cpu(typed_stage_settings(config, stage)) for stage in ("sft", "grpo")}


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_every_trainer_argument_is_a_field_of_the_installed_transformers(recipe, stage, tmp_path):
    from transformers import TrainingArguments

    fields = {field.name for field in dataclasses.fields(TrainingArguments)}
    assert set(runtime.trainer_arguments(recipe[stage], tmp_path)) <= fields


def _build(stage: str, settings: StageSettings, checkpoint_dir):
    if stage == "sft":
        from tinyrs.sft.trainer import training_arguments

        return training_arguments(settings, checkpoint_dir)
    from tinyrs.grpo.trainer import grpo_config

    return grpo_config(settings, checkpoint_dir)


@pytest.mark.parametrize("stage", ["sft", "grpo"])
@pytest.mark.parametrize("checkpointing", [True, False])
def test_recipe_builds_arguments_with_gradient_checkpointing_as_set(recipe, stage, checkpointing, tmp_path):
    """Both values: TRL's ``GRPOConfig`` defaults checkpointing to on, so "on" alone would not show the
    setting is passed. ``gradient_checkpointing`` is the attribute every supported transformers keeps
    (5.23 mirrors ``activation_checkpointing`` into it)."""
    assert recipe[stage].gradient_checkpointing is True  # the recipe's value; False is the variant
    args = _build(stage, dataclasses.replace(recipe[stage], gradient_checkpointing=checkpointing), tmp_path)
    assert args.gradient_checkpointing is checkpointing
    assert args.learning_rate == recipe[stage].learning_rate
