"""The settings of the training stages (a class per stage kind: ``tinyrs.kinds.KINDS``) and of an eval column,
with their sections (chat, rewards, judge): what ``tinyrs train``, ``tinyrs grpo`` and ``tinyrs eval`` read."""
from __future__ import annotations

from dataclasses import dataclass

from tinyrs.settings.base import Settings


@dataclass(frozen=True)
class ChatSettings(Settings):
    """Config ``chat``: the system prompts and the reasoning/answer tags."""

    system_prompt: str
    reasoning_system_prompt: str
    reasoning_tag: str
    answer_tag: str


@dataclass(frozen=True)
class JudgeSettings(Settings):
    """``judge`` of a GRPO stage: the LLM judge's endpoint, key variable and fallback."""

    base_url: str | None
    allow_insecure_http: bool
    model: str
    api_key_env: str
    allowed_key_envs: list[str]
    timeout_s: float
    max_retries: int
    concurrency: int
    fallback: str
    prompt_template: str | None


@dataclass(frozen=True)
class RewardSettings(Settings):
    """``rewards`` of a GRPO stage: reward name -> weight, by answer type ("0", "1", "2") and by task."""

    format_weight: float
    by_answer_type: dict[str, dict[str, float]]
    by_task: dict[str, dict[str, float]]


@dataclass(frozen=True)
class StageSettings(Settings):
    """What every stage kind's settings hold: where it comes from, and what ``runtime.trainer_arguments`` reads."""

    stage: str
    kind: str
    init: str
    data: str
    chat: ChatSettings
    epochs: float
    max_steps: int
    per_device_batch_size: int
    learning_rate: float
    min_pixels: int
    max_pixels: int
    precision: str
    attn_implementation: str
    gradient_checkpointing: bool
    deepspeed: str | None
    save_steps: int
    save_total_limit: int
    logging_steps: int
    report_to: list[str]
    seed: int


@dataclass(frozen=True)
class SftSettings(StageSettings):
    """A stage of kind sft (``train_defaults`` and the stage's own entry)."""

    global_batch_size: int
    merger_lr: float
    vision_lr: float
    weight_decay: float
    warmup_ratio: float
    lr_scheduler: str
    freeze_llm: bool
    freeze_vision_tower: bool
    tune_merger: bool
    max_length: int
    padding_free: bool
    group_by_length: bool
    liger_kernel: bool
    tf32: bool
    dataloader_workers: int
    system_prompt: str


@dataclass(frozen=True)
class GrpoSettings(StageSettings):
    """A stage of kind grpo (``grpo_defaults`` and the stage's own entry)."""

    grad_accum: int
    num_generations: int
    beta: float
    temperature: float
    top_k: int
    top_p: float
    loss_type: str
    scale_rewards: str
    epsilon: float
    num_iterations: int
    mask_truncated_completions: bool
    use_bias_correction_kl: bool
    max_prompt_length: int
    max_completion_length: int
    rollout: str
    vllm_gpu_memory_utilization: float
    skip_open_ended: bool
    rewards: RewardSettings
    judge: JudgeSettings


@dataclass(frozen=True)
class EvalSettings(Settings):
    """One report column's eval settings (config ``eval`` with the column's prompt style): a stage's, or a published
    model's (``eval.external_models``), whose settings also name it in ``model`` (its Hub repo and revision)."""

    stage: str
    chat: ChatSettings
    backend: str
    vllm_gpu_memory_utilization: float
    batch_size: int
    max_new_tokens: int
    max_samples: int | None
    shards: int
    group_tasks: bool
    precision: str
    attn_implementation: str
    prompt_style: str
    tasks: dict[str, dict]
    model: dict[str, str] | None = None
