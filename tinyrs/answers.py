"""Parsing model outputs: the answer block, normalised short answers, boxes and option letters.

Shared by the GRPO rewards and the evaluation so that a completion means the same thing to both.
Boxes are ``(x1, y1, x2, y2)`` floats on the 0-1000 normalised grid of the VHM convention.
The box forms that count are listed in one place, ``parse_boxes``'s docstring (and docs/design.md).
"""
from __future__ import annotations

import json
import math
import re
from typing import NamedTuple

Box = tuple[float, float, float, float]
BOX_SCALE = 1000.0

# A number: optional sign, digits, optional decimal part (possessive quantifiers: no backtracking blow-up).
_NUM = r"[-+]?\d++(?:\.\d++)?"
# Between two numbers of a box: a comma with optional whitespace around it, or whitespace alone.
_SEP = r"(?:\s*+,\s*+|\s++)"
_LIST_BOX = re.compile(rf"\[\s*+({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*+\]")
_QWEN_BOX = re.compile(
    rf"<\|box_start\|>\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*,\s*\(\s*({_NUM})\s*,\s*({_NUM})\s*\)\s*<\|box_end\|>"
)
_BBOX_2D = re.compile(r"\"bbox_2d\"\s*:\s*(\[[^\]]*\])")
_LABEL_SEPARATOR = re.compile(r"[,;\n]|\band\b", re.IGNORECASE)
_BOX_TEXT = re.compile(
    rf"{_QWEN_BOX.pattern}|\"bbox_2d\"\s*:\s*\[[^\]]*\]|\[\s*{_LIST_BOX.pattern}\s*\]|{_LIST_BOX.pattern}"
)
_YES = {"yes", "true", "y", "correct", "present"}
_NO = {"no", "false", "n", "incorrect", "absent", "not present"}


class Parsed(NamedTuple):
    """What a completion says. ``answer`` is None when no answer could be located."""

    reasoning: str | None
    answer: str | None
    has_answer_block: bool


def block_pattern(tag: str) -> re.Pattern:
    return re.compile(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)


def parse_completion(text: str, reasoning_tag: str = "reasoning", answer_tag: str = "answer") -> Parsed:
    """Locate the answer: the ``<answer>`` block, else the text after ``</reasoning>``, else the whole text.

    A reasoning block that is opened but never closed, with no answer block, gives ``answer=None``:
    the model never reached its answer.
    """
    text = text or ""
    reasoning_match = block_pattern(reasoning_tag).search(text)
    reasoning = reasoning_match.group(1).strip() if reasoning_match else None
    answers = block_pattern(answer_tag).findall(text)
    if answers:
        return Parsed(reasoning, answers[-1].strip(), True)
    closing = f"</{reasoning_tag}>"
    if closing in text:
        return Parsed(reasoning, text.rsplit(closing, 1)[1].strip(), False)
    if f"<{reasoning_tag}>" in text:
        return Parsed(None, None, False)
    return Parsed(None, text.strip(), False)


def normalize_text(text: str | None) -> str:
    """Lower-case, collapse whitespace, strip surrounding punctuation and a leading article."""
    if text is None:
        return ""
    cleaned = re.sub(r"\s+", " ", str(text)).strip().lower()
    cleaned = cleaned.strip(" .,;:!?\"'`")
    cleaned = re.sub(r"^(the|a|an) ", "", cleaned)
    return cleaned


def normalize_yes_no(text: str) -> str:
    """Map yes/no synonyms to ``yes``/``no``; other text is returned unchanged."""
    if text in _YES:
        return "yes"
    if text in _NO:
        return "no"
    return text


def as_number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except (ValueError, AttributeError):
        return None
    return value if math.isfinite(value) else None


def closed_answers_match(prediction: str | None, truth: str) -> bool:
    """Strict match of short answers: normalised text equal, yes/no synonyms equal, numbers equal as numbers."""
    pred = normalize_yes_no(normalize_text(prediction))
    gold = normalize_yes_no(normalize_text(truth))
    if not pred:
        return False
    pred_num, gold_num = as_number(pred), as_number(gold)
    if pred_num is not None and gold_num is not None:
        return pred_num == gold_num
    return pred == gold


def split_labels(text: str | None) -> list[str]:
    """The distinct normalised labels of a multi-label answer, in order of first mention.

    Labels are separated by commas, semicolons, newlines or the word "and"; a class name that itself
    contains one of these is split the same way on both sides of a comparison, so matching stays consistent.
    """
    labels = (normalize_text(part) for part in _LABEL_SEPARATOR.split(text or ""))
    return list(dict.fromkeys(label for label in labels if label))


def _to_box(values) -> Box | None:
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        return None
    return (numbers[0], numbers[1], numbers[2], numbers[3])


def _bbox_2d_box(listed: str) -> Box | None:
    """The box of a ``bbox_2d`` list: read as JSON, else by the list rule (``[120 40 300 200]``)."""
    try:
        return _to_box(json.loads(listed))
    except json.JSONDecodeError:
        match = _LIST_BOX.fullmatch(listed.strip())
        return _to_box(match.groups()) if match else None


def parse_boxes(text: str | None) -> list[Box]:
    """Every box written in ``text``, in order of position, each once (unnormalised, possibly reversed).

    This is the one list of the box forms that count (docs/design.md "Answer formats" repeats it):

    - ``[[x1, y1, x2, y2]]``, the VHM form, and the bare list ``[x1, y1, x2, y2]``;
      ``[[a, b], [c, d]]``-style nesting is not a box.
    - Between the four numbers: a comma with any whitespace around it (``[[120,40,300,200]]``,
      ``[ 120 , 40 , 300 , 200 ]``) or whitespace alone: spaces, tabs or newlines (``[[120 40 300 200]]``,
      the form the reference evaluator also reads); the two may be mixed. Not a separator: ``;``, ``,,``,
      nothing at all.
    - Numbers: digits with an optional sign and an optional decimal part (``-5``, ``+7``, ``12.5``);
      ``1e3``, ``.5``, ``5.``, ``nan`` and ``inf`` are not numbers. Values off the grid or corners in
      the wrong order are returned as written; ``canonical_box`` orders and clips them.
    - Qwen2-VL: ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, whitespace allowed around every part.
    - Qwen2.5-VL JSON: ``"bbox_2d": [x1, y1, x2, y2]`` (read as JSON, or else by the list rule above);
      the list inside it is that box, not a second one.
    """
    if not text:
        return []
    found: list[tuple[int, Box]] = []
    for match in _QWEN_BOX.finditer(text):
        box = _to_box(match.groups())
        if box:
            found.append((match.start(), box))
    covered = []
    for match in _BBOX_2D.finditer(text):
        covered.append(match.span())
        box = _bbox_2d_box(match.group(1))
        if box:
            found.append((match.start(), box))
    for match in _LIST_BOX.finditer(text):
        if any(start <= match.start() < end for start, end in covered):
            continue  # the list of a "bbox_2d" entry: already counted (counting it twice halves rewards)
        box = _to_box(match.groups())
        if box:
            found.append((match.start(), box))
    return [box for _, box in sorted(found, key=lambda item: item[0])]


def strip_boxes(text: str | None) -> str:
    """``text`` without the boxes written in it (any accepted syntax): the words of a grounded caption."""
    if not text:
        return ""
    without = _BOX_TEXT.sub(" ", text)
    return re.sub(r"\s+", " ", without).strip()


def canonical_box(box: Box) -> Box | None:
    """Order the corners and clip to the 0-1000 grid; a box with no area is None."""
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    x1, y1 = max(0.0, x1), max(0.0, y1)
    x2, y2 = min(BOX_SCALE, x2), min(BOX_SCALE, y2)
    if x2 <= x1 or y2 <= y1:
        return None
    return (x1, y1, x2, y2)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two canonical boxes, in [0, 1]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def format_box(box: Box) -> str:
    return "[[" + ", ".join(str(int(round(v))) for v in box) + "]]"


# LHRS-Bench question types: the ids of the benchmark's ``type`` lists and their names. The one table:
# the eval's per-type columns (tinyrs.eval.tasks) and the demo world's LHRS-Bench questions both use it.
LHRS_TYPES = {
    1: "identity", 2: "color", 3: "orientation", 4: "shape", 5: "quantity", 6: "area",
    7: "distance", 8: "resolution", 9: "modality", 10: "location", 11: "reasoning",
}

_OPTION_ALONE = re.compile(r"^\s*(?:\(([A-H])\)|([A-H])(?=$|[.:)]))")
_OPTION_STATED = re.compile(r"(?i:\banswer\s*(?:is|:))\s*:?\s*\(?([A-H])\)?(?![A-Za-z])")


def option_letter(text: str | None) -> str | None:
    """The multiple-choice option a short answer names, or None.

    Accepted: ``B``, ``B.``, ``B)``, ``B: forest``, ``(B)``, ``B. forest``, ``The answer is B``, ``Answer: (B)``.
    Options are the capitals A-H; a bare leading capital followed by a word (``A forest``) is an article, not an option.
    """
    if not text:
        return None
    match = _OPTION_ALONE.match(text) or _OPTION_STATED.search(text)
    if not match:
        return None
    return next(group for group in match.groups() if group)
