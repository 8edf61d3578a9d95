"""Format reward: is the completion exactly one reasoning block followed by one answer block?"""
from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=8)
def _format_pattern(reasoning_tag: str, answer_tag: str) -> re.Pattern:
    r, a = re.escape(reasoning_tag), re.escape(answer_tag)
    return re.compile(rf"\s*<{r}>(.*?)</{r}>\s*<{a}>(.*?)</{a}>\s*", re.DOTALL)


def is_well_formed(text: str, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> bool:
    """True for ``<reasoning>R</reasoning><answer>A</answer>`` and nothing else.

    Whitespace around and between the blocks is allowed; R and A must hold more than whitespace; each of
    the four tags appears exactly once (so no nested, repeated or stray tags), and the answer comes second.
    """
    tags = (f"<{reasoning_tag}>", f"</{reasoning_tag}>", f"<{answer_tag}>", f"</{answer_tag}>")
    if any(text.count(tag) != 1 for tag in tags):
        return False
    match = _format_pattern(reasoning_tag, answer_tag).fullmatch(text)
    return bool(match and match.group(1).strip() and match.group(2).strip())


def format_reward(text: str, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> float:
    """1.0 if the completion is well formed (see ``is_well_formed``), else 0.0. Range [0, 1]."""
    return 1.0 if is_well_formed(text, reasoning_tag, answer_tag) else 0.0
