"""The GRPO loss is a setting: config.yaml's values reach TRL's ``GRPOConfig``, and they are the reference's.

REFERENCE.md §9: the reference averaged each completion's token losses, then the completions (TRL's ``grpo``),
normalised advantages by the group's std + 1e-4, made one policy update per generation batch, sampled at
temperature 1.0, and weighted its KL term by nothing. What TRL 1.16 cannot set (the 1e-4) is checked in its source
here, so a TRL upgrade that changes it fails this file instead of silently changing the recipe.
"""
from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml

from tinyrs.config import load_config, typed_stage_settings
from tinyrs.settings import GrpoSettings

DEMO = "profiles/demo/overrides.yaml"


def _cpu(settings: GrpoSettings) -> GrpoSettings:
    """The recipe's settings less what needs a cluster: DeepSpeed (a launcher) and the remote loggers."""
    return dataclasses.replace(settings, deepspeed=None, report_to=[])


def _grpo_config(paths: list, tmp_path):
    from tinyrs.grpo.trainer import grpo_config

    settings = _cpu(typed_stage_settings(load_config(paths), "grpo"))
    return settings, grpo_config(settings, tmp_path / "checkpoints")


@pytest.fixture(autouse=True)
def _in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def test_the_real_recipe_is_the_reference_trainer(tmp_path):
    settings, args = _grpo_config(["config.yaml"], tmp_path)
    assert args.loss_type == "grpo"                      # per-completion token mean, then mean over completions
    assert args.scale_rewards == "group"                 # (r - group mean) / (group std + 1e-4)
    assert args.num_iterations == 1                      # one policy update per generation batch...
    assert args.steps_per_generation == args.gradient_accumulation_steps == 1   # ...that one step consumes
    assert args.epsilon == 0.2 and args.mask_truncated_completions is False
    assert args.use_bias_correction_kl is False          # KL term without the importance weight
    assert (args.temperature, args.top_k, args.top_p) == (1.0, 0, 1.0)
    assert (args.beta, args.num_generations) == (0.001, 4)
    assert args.per_device_train_batch_size == settings.per_device_batch_size * settings.num_generations


def test_the_demo_keeps_the_trl_defaults_it_was_tuned_with(tmp_path):
    from trl import GRPOConfig

    _, args = _grpo_config(["config.yaml", DEMO], tmp_path)
    defaults = GRPOConfig(output_dir=str(tmp_path / "defaults"), use_cpu=True, report_to="none")
    for key in ("loss_type", "scale_rewards", "epsilon", "num_iterations", "mask_truncated_completions",
                "use_bias_correction_kl", "top_k", "top_p"):
        assert getattr(args, key) == getattr(defaults, key), key
    assert args.temperature == 0.7


CHANGED = {"loss_type": "dr_grpo", "scale_rewards": "batch", "epsilon": 0.28, "num_iterations": 2,
           "mask_truncated_completions": True, "use_bias_correction_kl": True, "top_k": 50, "top_p": 0.9,
           "temperature": 0.9}


def test_every_configured_value_reaches_grpo_config(tmp_path):
    """Values that are nobody's default: each key is passed through, not merely left at a matching default."""
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"stages": {"grpo": CHANGED}}))   # a stage's own settings override the defaults
    _, args = _grpo_config(["config.yaml", overlay], tmp_path)
    assert {key: getattr(args, key) for key in CHANGED} == CHANGED


@pytest.mark.parametrize("key, value", [("loss_type", "luspo"), ("scale_rewards", True), ("epsilon", 1.5),
                                        ("num_iterations", 0), ("top_p", 0)])
def test_values_trl_would_reject_or_misread_are_config_errors(tmp_path, key, value):
    from tinyrs.config import ConfigError

    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"grpo_defaults": {key: value}}))
    with pytest.raises(ConfigError, match=f"grpo_defaults.{key}"):
        load_config(["config.yaml", overlay])


def test_the_advantage_epsilon_trl_fixes_is_the_references():
    """TRL 1.16 has no setting for it: ``advantages / (std_rewards + 1e-4)`` is written in its trainer, with
    the unbiased (n - 1) std, as the reference's ``global_rewards.std(dim=1)`` + 1e-4."""
    import torch
    from trl import GRPOTrainer
    from trl.trainer.utils import nanstd

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "advantages = advantages / (std_rewards + 1e-4)" in source
    rewards = torch.tensor([[0.0, 1.0, 1.0, 2.5], [1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(nanstd(rewards, dim=1), rewards.std(dim=1))


def test_the_grpo_loss_averages_per_completion_then_over_completions():
    """The aggregation TRL 1.16 applies for ``loss_type="grpo"`` (read from its source), as in the reference."""
    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer._compute_loss)
    assert 'if self.loss_type in ["grpo", "sapo"]:' in source
    assert "loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()" in source
    assert "if self.args.use_bias_correction_kl:\n                per_token_kl = per_token_kl * coef_1" in source
