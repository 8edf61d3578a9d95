"""GRPO on TRL's ``GRPOTrainer`` with the task-aware rewards of ``tinyrs.grpo.rewards``.

``per_device_batch_size`` in config counts prompts, as in the reference recipe; TRL counts
completions, so TRL's per-device batch is prompts x ``num_generations``.
The loss, advantage and sampling settings (``TRL_SETTINGS``) are config keys of the same name and value as
TRL 1.16's ``GRPOConfig``; config.yaml sets them to what the reference's trainer did (README, "GRPO recipe vs
the reference").
"""
from __future__ import annotations

from pathlib import Path

from tinyrs import runtime
from tinyrs.grpo.curves import reward_curve
from tinyrs.grpo.dataset import load_grpo_dataset
from tinyrs.model.load import load_model, load_processor
from tinyrs.settings import GrpoSettings


# GRPO settings (grpo_defaults, or a stage's own) passed to GRPOConfig unchanged (same name, same meaning)
TRL_SETTINGS = ("num_generations", "beta", "temperature", "top_k", "top_p", "loss_type", "scale_rewards", "epsilon",
                "num_iterations", "mask_truncated_completions", "use_bias_correction_kl", "max_completion_length")


def grpo_config(settings: GrpoSettings, checkpoint_dir: Path):
    """The one translation of a GRPO stage's settings into TRL's ``GRPOConfig``."""
    from trl import GRPOConfig

    return GRPOConfig(
        **runtime.trainer_arguments(settings, checkpoint_dir),
        **{key: getattr(settings, key) for key in TRL_SETTINGS},
        per_device_train_batch_size=settings.per_device_batch_size * settings.num_generations,
        gradient_accumulation_steps=settings.grad_accum,
        use_vllm=settings.rollout == "vllm",
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
    )


def build_trainer(settings: GrpoSettings, init_model: str, dataset_path: str, checkpoint_dir: str,
                  callbacks: list = ()):
    """TRL's GRPOTrainer as configured; ``tinyrs_inputs``: the dataset and what loading it skipped."""
    from trl import GRPOTrainer

    from tinyrs.grpo.rewards import make_reward_functions

    processor = load_processor(init_model, settings.min_pixels, settings.max_pixels)
    processor.tokenizer.padding_side = "left"
    dataset, data_report = load_grpo_dataset(dataset_path, settings, processor)
    model = load_model(init_model, attn_implementation=settings.attn_implementation, for_training=True)
    trainer = runtime.resumable(GRPOTrainer)(
        model=model,
        reward_funcs=make_reward_functions(settings),
        args=grpo_config(settings, Path(checkpoint_dir)),
        train_dataset=dataset,
        processing_class=processor,
        callbacks=list(callbacks),
    )
    trainer.tinyrs_inputs = {"data": data_report, "dataset": str(dataset_path)}
    return trainer


def summarize(trainer) -> dict:
    """The model manifest's fields of a GRPO run: the dataset's skips, the reward curve and the rewards' counts."""
    return {**trainer.tinyrs_inputs, "reward_curve": reward_curve(trainer.state.log_history),
            "rewards": trainer.reward_funcs[0].suite.summary()}


def train(settings: GrpoSettings, init_model: str, dataset_path: str, out_dir: str, checkpoint_dir: str) -> dict:
    return runtime.train_stage(build_trainer, summarize, settings, init_model, dataset_path, out_dir, checkpoint_dir)
