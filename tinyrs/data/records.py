"""Schema of a VHM list record, shared by ``tinyrs data correct`` (rejects) and ``validate`` (reports).

A record is ``{"id"?, "source_dataset"?, "image"?: str | [str], "conversations": [{"from", "value"}...]}``
with human/gpt turns alternating from a human turn, and as many ``<image>`` tags in the human turns as
there are images. Each problem carries a reason code from ``REASONS`` and the field it is about.
"""
from __future__ import annotations

import re
from typing import Any, NamedTuple

from tinyrs.chat import IMAGE_PLACEHOLDER
from tinyrs.data.stream import InvalidText

# Every reason a record can be rejected or reported for; report.json counts each of them.
REASONS = (
    "bad_json_type",          # the array element is not an object
    "invalid_unicode",        # a string (or key) holds a lone surrogate, e.g. the JSON escape \ud800 alone
    "missing_conversations",  # no `conversations` field
    "bad_field_type",         # a field has the wrong type (conversations, a turn, from/value, image, source_dataset)
    "odd_turns",              # empty or odd number of turns
    "bad_roles",              # turns do not alternate human, gpt, human, ...
    "image_tag_mismatch",     # `<image>` tags in human turns != number of images, or a tag in a gpt turn
    "unsafe_path",            # absolute image path or one with a `..` component
    "missing_image",          # the image file does not exist under the image root
    "corrupt_image",          # the image file exists but does not decode
    "duplicate",              # same images and conversations as an earlier record
)
# A list with more than this fraction of its records rejected for a defect went bad (data.max_rejected_fraction).
# Duplicates are no defect: the published lists are oversampled.
MAX_REJECTED_FRACTION = 0.05
NOT_DEFECTS = ("duplicate",)
ROLES = ("human", "gpt")
_WINDOWS_DRIVE = re.compile(r"[A-Za-z]:[/\\]")


class Problem(NamedTuple):
    reason: str
    field: str
    detail: str

    def message(self, path: str, index: int) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{path}: record {index}: {where}{self.detail}"


def structure_problem(record: Any) -> Problem | None:
    """The first structural problem of ``record`` (types, turns, roles, image field), or None.

    Called once per record of lists with millions of them: one pass, cheap checks first.
    """
    if not isinstance(record, dict):
        if isinstance(record, InvalidText):  # what the list reader yields in place of such a record
            return Problem("invalid_unicode", record.field, record.detail)
        return Problem("bad_json_type", "", f"expected a JSON object, got {_json_type(record)}")
    turns = record.get("conversations")
    if not isinstance(turns, list):
        if "conversations" not in record:
            return Problem("missing_conversations", "conversations", "field is missing")
        return Problem("bad_field_type", "conversations", f"expected a list, got {_json_type(turns)}")
    expected, other = ROLES
    for number, turn in enumerate(turns):
        try:
            role, value = turn["from"], turn["value"]
        except (TypeError, KeyError):
            return _turn_problem(number, turn)
        if type(role) is not str or type(value) is not str:
            return _turn_problem(number, turn)
        if role != expected:
            return Problem("bad_roles", f"conversations[{number}].from", f"expected '{expected}', got {role!r}")
        expected, other = other, expected
    if not turns or len(turns) % 2:
        return Problem("odd_turns", "conversations", f"expected human/gpt pairs, got {len(turns)} turns")
    image = record.get("image")
    if image is not None and not isinstance(image, str):
        if not isinstance(image, list) or not all(isinstance(item, str) for item in image):
            return Problem("bad_field_type", "image", f"expected a string or a list of strings, got {_describe(image)}")
    source = record.get("source_dataset")
    if source is not None and not isinstance(source, str):
        return Problem("bad_field_type", "source_dataset", f"expected a string, got {_json_type(source)}")
    return None


def image_list(record: dict) -> list[str]:
    """The record's images as a list (a structurally valid record)."""
    image = record.get("image")
    if image is None:
        return []
    return [image] if isinstance(image, str) else image


def image_tag_problem(turns: list[dict], n_images: int) -> Problem | None:
    """``<image>`` tags must appear only in human turns, once per image."""
    in_human = 0
    for number, turn in enumerate(turns):
        count = turn["value"].count(IMAGE_PLACEHOLDER)
        if count and turn["from"] == "gpt":
            return Problem("image_tag_mismatch", f"conversations[{number}].value", f"{IMAGE_PLACEHOLDER} in a gpt turn")
        in_human += count
    if in_human != n_images:
        return Problem(
            "image_tag_mismatch", "conversations",
            f"{in_human} {IMAGE_PLACEHOLDER} tags in human turns for {n_images} images",
        )
    return None


def unsafe_path_problem(path: str) -> Problem | None:
    """Image paths are relative to the image root and may not leave it."""
    if path.startswith("/") or _WINDOWS_DRIVE.match(path) or ".." in path.split("/"):
        return Problem("unsafe_path", "image", f"{path!r} is absolute or leaves the image root")
    return None


def _turn_problem(number: int, turn: Any) -> Problem:
    if not isinstance(turn, dict):
        return Problem("bad_field_type", f"conversations[{number}]", f"expected an object, got {_json_type(turn)}")
    for key in ("from", "value"):
        if key not in turn:
            return Problem("bad_field_type", f"conversations[{number}].{key}", "field is missing")
        if not isinstance(turn[key], str):
            got = _json_type(turn[key])
            return Problem("bad_field_type", f"conversations[{number}].{key}", f"expected a string, got {got}")
    raise AssertionError("called for a well-formed turn")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _describe(value: Any) -> str:
    if isinstance(value, list):
        odd = next(item for item in value if not isinstance(item, str))
        return f"a list holding {_json_type(odd)}"
    return _json_type(value)
