"""A stage's or an eval column's settings as typed objects, built once from its settings file.

The workflow writes ``settings/<stage>.json`` and ``settings/eval-<column>.json`` from config
(``tinyrs.config.stage_settings``, ``eval_settings``, checked by the schema); ``tinyrs train`` and ``tinyrs eval``
read them back with ``from_dict``, which refuses an unknown key, a missing key or a value of the wrong type, naming
the file and the key: the file may have been edited by hand, or written by another version. ``to_dict`` gives back
the very dict read, so the settings file, its hash (``runtime.run_fingerprint``, the eval's resume fingerprint) and
the model manifest's ``config_sha256`` do not change. Lists and mappings are kept as read (the objects are frozen,
their contents are not copied): ``to_dict`` must give equal JSON.

A field with a default is a key the file may leave out (``EvalSettings.model``: only a published model's column
names one). ``to_dict`` leaves it out when it holds the default, so ``from_dict`` refuses the default written out:
the dict read would not come back.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    """A settings file that does not hold the settings of its kind."""


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON is of the annotated type (an int is a float; a bool is not a number)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_conforms(key, args[0]) and _conforms(item, args[1])
                                               for key, item in value.items())
    if hint is type(None):
        return value is None
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, (int, float) if hint is float else hint)


class Settings:
    """``from_dict``/``to_dict`` for a frozen dataclass of settings; nested dataclasses are sections."""

    def to_dict(self) -> dict:
        return {field.name: _plain(getattr(self, field.name)) for field in dataclasses.fields(self)
                if not _optional(field) or getattr(self, field.name) != field.default}

    @classmethod
    def from_dict(cls, data: Any, source: str, prefix: str = ""):
        """Build from ``data`` (read from the file ``source``; ``prefix``: the dotted key of a nested section)."""
        where = f"{source}: key '{prefix.rstrip('.')}'" if prefix else source
        if not isinstance(data, dict):
            raise SettingsError(f"{where}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = [field for field in dataclasses.fields(cls) if field.name in data or not _optional(field)]
        problems = [f"unknown key '{prefix}{key}'" for key in data if key not in hints]
        problems += [f"missing key '{prefix}{field.name}'" for field in fields if field.name not in data]
        problems += [f"key '{prefix}{field.name}': {field.default!r} is its default: leave the key out"
                     for field in fields if _optional(field) and data.get(field.name) == field.default]
        if problems:
            raise SettingsError(f"{source}: {'; '.join(problems)}")
        values = {}
        for name in (field.name for field in fields):
            hint, value = hints[name], data[name]
            if isinstance(hint, type) and issubclass(hint, Settings):
                values[name] = hint.from_dict(value, source, f"{prefix}{name}.")
            elif _conforms(value, hint):
                values[name] = value
            else:
                raise SettingsError(f"{source}: key '{prefix}{name}': {value!r} is not of type {_type_name(hint)}")
        return cls(**values)


def _optional(field: dataclasses.Field) -> bool:
    return field.default is not dataclasses.MISSING


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Settings) else value


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


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
