"""What a reward sees: one generated completion and the solution it is scored against.

The GRPO dataset's ``solution`` column is ``[answer_type, answer, question, base64 jpeg]``
(``answer_type`` "0" open-ended, "1" closed, "2" box); an optional ``task`` column names the sample's task
(GeoVLM-R1's routing, ``grpo.rewards.by_task``). Completions arrive from TRL either as plain
strings or conversationally, as ``[{"role": "assistant", "content": str}]``.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from tinyrs.answers import parse_completion
from tinyrs.grpo.rewards.format import is_well_formed
from tinyrs.io import DataError
from tinyrs.settings import ChatSettings


class Sample(NamedTuple):
    """The ground truth of one prompt. ``image_b64`` is None when the solution carries no image; ``task`` is None
    when the sample names no task."""

    answer_type: str
    answer: str
    question: str
    image_b64: str | None
    task: str | None = None


class Completion(NamedTuple):
    """One generated text, parsed once: ``answer`` is None when the model never reached an answer."""

    text: str
    answer: str | None
    well_formed: bool


def sample_from_solution(solution: Any, where: str, task: Any = None) -> Sample:
    """Read one ``solution`` value and the sample's ``task`` (None: none named); ``where`` names it in errors
    (e.g. ``"solution[3]"``)."""
    if not isinstance(solution, (list, tuple)) or len(solution) not in (3, 4):
        raise DataError(
            f"{where}: expected [answer_type, answer, question, base64 image] (image optional), got {solution!r:.200}"
        )
    answer_type, answer, question = solution[0], solution[1], solution[2]
    image = solution[3] if len(solution) == 4 else None
    if isinstance(answer_type, int) and not isinstance(answer_type, bool):
        answer_type = str(answer_type)
    for field, value in (("answer_type", answer_type), ("answer", answer), ("question", question)):
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    if not answer.strip():
        raise DataError(f"{where}: field 'answer' is empty")
    if image is not None and not isinstance(image, str):
        raise DataError(f"{where}: field 'image' must be a base64 string, got {type(image).__name__}")
    if task is not None and not (isinstance(task, str) and task.strip()):
        raise DataError(f"{where}: field 'task' must be a non-empty string or null, got {task!r:.100}")
    return Sample(answer_type, answer, question, image or None, task)


def completion_text(completion: Any, where: str) -> str:
    """The assistant's text: a plain string, or the last assistant message of a conversation.

    Message content may be a string or a list of parts (``{"type": "text", "text": ...}``).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (list, tuple)):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role") == "assistant":
                return _content_text(message.get("content"), where)
    raise DataError(
        f"{where}: expected a string or a list of chat messages with an assistant turn, got {completion!r:.200}"
    )


def _content_text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if all(isinstance(part, str) for part in parts):
            return "".join(parts)
    raise DataError(f"{where}: assistant content must be a string or a list of text parts, got {content!r:.200}")


def read_completion(text: str, reasoning_tag: str, answer_tag: str) -> Completion:
    return Completion(
        text,
        parse_completion(text, reasoning_tag, answer_tag).answer,
        is_well_formed(text, reasoning_tag, answer_tag),
    )


def read_completions(completions: Sequence[Any], chat: ChatSettings) -> list[Completion]:
    """Parse a batch of completions with the configured tags (``chat.reasoning_tag``/``answer_tag``)."""
    tags = chat.reasoning_tag, chat.answer_tag
    return [read_completion(completion_text(c, f"completions[{i}]"), *tags) for i, c in enumerate(completions)]
