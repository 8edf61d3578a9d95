"""``tinyrs data validate``: stream a list and report every schema problem, without changing anything.

Checks: the record structure (``records.structure_problem``), ``<image>`` tags against the images,
image paths (safe, and when an image root is given, existing under it through no link leading out),
boxes in the gpt answers of ``{VG}`` records (0-1000 grid, x1 < x2, y1 < y2), and, when asked, the
reasoning format of every gpt answer.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from typing import Iterator, NamedTuple, TextIO

from tinyrs.answers import BOX_SCALE, block_pattern, parse_boxes
from tinyrs.data.images import ImageTree
from tinyrs.data.records import Problem, image_list, image_tag_problem, structure_problem, unsafe_path_problem
from tinyrs.data.stream import iter_json_array
from tinyrs.io import DataError

GROUNDING_PREFIX = "{VG}"


class AnswerFormat(NamedTuple):
    """The reasoning format every gpt answer must have: one reasoning block, then one answer block."""

    tags: tuple[str, str]
    whole: re.Pattern
    answer: re.Pattern

    @classmethod
    def of(cls, reasoning_tag: str, answer_tag: str) -> "AnswerFormat":
        def block(tag: str) -> str:
            opening, closing = re.escape(f"<{tag}>"), re.escape(f"</{tag}>")
            return rf"{opening}(?:(?!{opening}|{closing}).)*{closing}"

        whole = re.compile(rf"\s*{block(reasoning_tag)}\s*{block(answer_tag)}\s*", re.DOTALL)
        return cls((reasoning_tag, answer_tag), whole, block_pattern(answer_tag))

    def describe(self) -> str:
        reasoning, answer = self.tags
        return f"expected exactly <{reasoning}>…</{reasoning}><{answer}>…</{answer}>"


def record_problems(record: object, tree: ImageTree | None, answer_format: AnswerFormat | None) -> Iterator[Problem]:
    problem = structure_problem(record)
    if problem:
        yield problem
        return
    turns = record["conversations"]
    images = image_list(record)
    problem = image_tag_problem(turns, len(images))
    if problem:
        yield problem
    for number, image in enumerate(images):
        field = "image" if isinstance(record["image"], str) else f"image[{number}]"
        problem = unsafe_path_problem(image)
        if problem:
            yield problem._replace(field=field)
        elif tree is not None and image not in tree.files:
            missing = Problem("missing_image", field, f"{image!r} not found under {tree.root}")
            yield (tree.link_out_problem(image) or missing)._replace(field=field)
    grounding = any(GROUNDING_PREFIX in turn["value"] for turn in turns[0::2])
    for number in range(1, len(turns), 2):
        text, field = turns[number]["value"], f"conversations[{number}].value"
        if answer_format and not answer_format.whole.fullmatch(text):
            yield Problem("bad_reasoning_format", field, answer_format.describe())
        if grounding:
            answer = answer_format.answer.search(text) if answer_format else None
            yield from _box_problems(answer.group(1) if answer else text, field)


def _box_problems(text: str, field: str) -> Iterator[Problem]:
    boxes = parse_boxes(text)
    if not boxes:
        yield Problem("bad_box", field, f"no box in the answer of a {GROUNDING_PREFIX} record: {text[:80]!r}")
    for box in boxes:
        x1, y1, x2, y2 = box
        if not all(0 <= value <= BOX_SCALE for value in box):
            yield Problem("bad_box", field, f"box {list(box)} leaves the 0-{int(BOX_SCALE)} grid")
        elif not (x1 < x2 and y1 < y2):
            yield Problem("bad_box", field, f"box {list(box)} needs x1 < x2 and y1 < y2")


def validate_list(
    path: str | os.PathLike, image_root: str | os.PathLike | None = None, tags: tuple[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """Every problem of the list in ``path`` as ``(reason, message)``; the message names file, record, field.

    A file that is not a readable JSON array ends the stream with one ``unreadable`` message saying where.
    """
    tree = ImageTree(image_root, index_files=True) if image_root is not None else None
    answer_format = AnswerFormat.of(*tags) if tags else None
    name = str(path)
    try:
        for index, record in iter_json_array(path):
            for problem in record_problems(record, tree, answer_format):
                yield problem.reason, problem.message(name, index)
    except DataError as err:
        yield "unreadable", str(err)


def run_validate(
    path: str | os.PathLike, image_root: str | os.PathLike | None, tags: tuple[str, str] | None,
    max_errors: int, out: TextIO | None = None,
) -> int:
    """Print up to ``max_errors`` problems and a summary by reason; exit code 1 when there are problems."""
    by_reason: Counter[str] = Counter()
    for reason, message in validate_list(path, image_root, tags):
        by_reason[reason] += 1
        if sum(by_reason.values()) <= max_errors:
            print(message, file=out)
    total = sum(by_reason.values())
    if not total:
        print(f"{path}: no problems", file=out)
        return 0
    hidden = f", {total - max_errors} not shown" if total > max_errors else ""
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(by_reason.items()))
    print(f"{path}: {total} problems ({reasons}{hidden})", file=out)
    return 1
