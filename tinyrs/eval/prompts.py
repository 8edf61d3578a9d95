"""Eval prompts from the stage's ``prompt_style`` (docs/design.md), through the one chat format of ``tinyrs.chat``.

- ``tinyrs``: the task prefix (``{CLS}``...) before the question, default system prompt (SFT-trained models);
- ``plain``: the bare question, default system prompt (the base model);
- ``reasoning``: the task prefix, reasoning system prompt (CoT-SFT and GRPO models).
Nothing here looks at the model's path or name (REFERENCE.md §3.7).
"""
from __future__ import annotations

from tinyrs.chat import IMAGE_PLACEHOLDER, prompt_messages, strip_task_prefix, system_prompt
from tinyrs.eval.tasks import Task
from tinyrs.settings import EvalSettings

STYLES = {  # style -> (use the task prefix, system prompt kind)
    "tinyrs": (True, "default"),
    "plain": (False, "default"),
    "reasoning": (True, "reasoning"),
}


def _style(settings: EvalSettings) -> tuple[bool, str]:
    style = settings.prompt_style
    if style not in STYLES:
        raise ValueError(f"unknown prompt_style '{style}': expected one of {sorted(STYLES)}")
    return STYLES[style]


def question_text(question: str, task: Task, settings: EvalSettings) -> str:
    """The question as asked: without image placeholders or a stray prefix, with the task prefix if the style uses one."""
    use_prefix, _ = _style(settings)
    text = strip_task_prefix(question.replace(IMAGE_PLACEHOLDER, "").strip())
    if use_prefix and task.prefix:
        text = f"{task.prefix} {text}"
    return text


def build_messages(query: str, settings: EvalSettings, n_images: int = 1) -> list[dict]:
    """Chat messages asking ``query`` (from ``question_text``) about ``n_images`` images, placed before it in order."""
    _, system_kind = _style(settings)
    return prompt_messages(query, system_prompt(settings.chat, system_kind), n_images)

