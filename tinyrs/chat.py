"""The one conversation format used by training, GRPO and evaluation.

Records in the VHM layout (``conversations`` of ``{"from": "human"|"gpt", "value": ...}`` with
``<image>`` placeholders) become Hugging Face chat messages here, and are rendered by the
processor's own chat template (Qwen2-VL's, Qwen2.5-VL's). No stage formats prompts by hand, so the text a model
is trained on is byte-for-byte the text it is evaluated on.
"""
from __future__ import annotations

import re
from typing import Any

from tinyrs.settings import ChatSettings

IMAGE_PLACEHOLDER = "<image>"
ROLE_OF = {"human": "user", "gpt": "assistant"}


def system_prompt(chat: ChatSettings, kind: str) -> str | None:
    """``kind`` is ``default``, ``reasoning`` or ``none`` (no system turn)."""
    if kind == "default":
        return chat.system_prompt
    if kind == "reasoning":
        return chat.reasoning_system_prompt
    if kind == "none":
        return None
    raise ValueError(f"unknown system prompt kind '{kind}': expected default, reasoning or none")


def _content(text: str, role: str) -> list[dict]:
    """Split ``text`` at ``<image>`` placeholders into interleaved image and text items."""
    if role != "user":
        return [{"type": "text", "text": text}]
    items: list[dict] = []
    pieces = text.split(IMAGE_PLACEHOLDER)
    for index, piece in enumerate(pieces):
        if index > 0:
            items.append({"type": "image"})
        if len(pieces) > 1:
            piece = piece.strip("\n")
        if piece:
            items.append({"type": "text", "text": piece})
    return items


def to_messages(conversations: list[dict], system: str | None) -> list[dict]:
    """VHM ``conversations`` to chat messages (roles checked by the data validator upstream)."""
    messages: list[dict] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    for turn in conversations:
        role = ROLE_OF[turn["from"]]
        messages.append({"role": role, "content": _content(turn["value"], role)})
    return messages


def prompt_messages(question: str, system: str | None, n_images: int = 1) -> list[dict]:
    """A single user turn asking ``question`` about ``n_images`` images (eval and GRPO prompts)."""
    if IMAGE_PLACEHOLDER not in question:
        question = IMAGE_PLACEHOLDER * n_images + "\n" + question
    return to_messages([{"from": "human", "value": question}], system)


def render(processor: Any, messages: list[dict], add_generation_prompt: bool) -> str:
    """Render with the processor's chat template: the single source of prompt text."""
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def reasoning_text(reasoning: str, answer: str, chat: ChatSettings) -> str:
    r, a = chat.reasoning_tag, chat.answer_tag
    return f"<{r}>{reasoning}</{r}><{a}>{answer}</{a}>"


def strip_task_prefix(question: str) -> str:
    """Remove a leading VHM task prefix such as ``{CLS}``."""
    return re.sub(r"^\s*\{[A-Z]+\}\s*", "", question)
