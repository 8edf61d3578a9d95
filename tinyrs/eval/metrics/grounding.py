"""``grounding``: visual grounding (DIOR-RSVG), Precision@IoU 0.5.

Strict: over *all* samples; a completion without a usable box is a miss (the reference dropped it from the
denominator, REFERENCE.md §3.4). The first box written (any form ``answers.parse_boxes`` reads; corners ordered,
clipped to the grid) is the answer; it is scaled to pixels with ``size`` = [width, height]. Also by ground-truth
box size in pixels (small < 32², medium < 96², large: upper bounds exclusive), the mean IoU, and ``no_box_rate``:
the share of completions with no box written in any form ``parse_boxes`` reads.

Lenient: ``precision@0.5_lenient`` and ``precision@0.5_lenient_<bucket>`` over the reference's pairs
(``lenient.reference_grounding_pairs``; a completion without a box it reads adds nothing). Rows carry
``lenient_pairs`` (one ``{iou, hit, bucket}`` per pair) and ``correct_lenient`` = the number of hit pairs, None
when the row adds nothing to the reference's denominator.
"""
from __future__ import annotations

import math

from tinyrs.answers import BOX_SCALE, Box, canonical_box, iou, parse_boxes
from tinyrs.eval.lenient import REFERENCE_SIZE_BUCKETS, reference_grounding_pairs
from tinyrs.eval.metrics.base import Aggregate, Metric, Problem, count, entry

PRIMARY, LENIENT = "precision@0.5", "precision@0.5_lenient"
IOU_THRESHOLD = 0.5
SIZE_BUCKETS = (("small", 32**2), ("medium", 96**2), ("large", math.inf))  # by area in pixels, upper bounds exclusive


def truth_box(task, box: Box) -> Box | None:
    """A ground-truth box with its corners ordered, in the task's units (pixels, or the 0-1000 grid where it is
    also clipped); None without an area."""
    if task.answer_boxes == "normalized":
        return canonical_box(box)
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def ground_truth_box(task, answer: str) -> Box | None:
    """The first box of the ground truth (``truth_box``)."""
    boxes = parse_boxes(answer)
    return truth_box(task, boxes[0]) if boxes else None


def truth_problem(task, answer: str, types) -> Problem | None:
    if ground_truth_box(task, answer) is None:
        return "answer_without_box", f"no box with an area in the ground truth {answer!r}"
    return None


def size_bucket(area_px: float) -> str:
    return next(name for name, bound in SIZE_BUCKETS if area_px < bound)


def to_task_units(box: Box, task, size) -> Box:
    """A box on the 0-1000 grid in the units of the task's ground truth. ``size`` is [width, height]."""
    if task.answer_boxes == "normalized":
        return box
    width, height = size
    return (box[0] * width / BOX_SCALE, box[1] * height / BOX_SCALE,
            box[2] * width / BOX_SCALE, box[3] * height / BOX_SCALE)


def _area_px(box: Box, task, size) -> float:
    width, height = size
    area = (box[2] - box[0]) * (box[3] - box[1])
    return area if task.answer_boxes == "pixels" else area * width * height / BOX_SCALE**2


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    truth = ground_truth_box(task, row["answer"])
    written = parse_boxes(parsed)
    box = canonical_box(written[0]) if written else None
    overlap = iou(to_task_units(box, task, row["size"]), truth) if box else 0.0
    pairs = reference_grounding_pairs(row["pred"], row["answer"], row["size"], task.answer_boxes, *tags)
    return {"box": list(box) if box else None, "boxes_written": len(written), "iou": overlap,
            "bucket": size_bucket(_area_px(truth, task, row["size"])), "correct": overlap >= IOU_THRESHOLD,
            "lenient_pairs": [pair._asdict() for pair in pairs],
            "correct_lenient": sum(pair.hit for pair in pairs) if pairs else None}


def aggregate(rows: list[dict]) -> Aggregate:
    n = len(rows)
    pairs = [pair for row in rows for pair in row["lenient_pairs"]]
    extra = {}
    for bucket, _ in SIZE_BUCKETS:
        subset = [row for row in rows if row["bucket"] == bucket]
        extra[f"{PRIMARY}_{bucket}"] = entry(count(subset, "correct"), len(subset))
    for bucket, _ in REFERENCE_SIZE_BUCKETS:
        subset = [pair for pair in pairs if pair["bucket"] == bucket]
        extra[f"{LENIENT}_{bucket}"] = entry(count(subset, "hit"), len(subset))
    extra["mean_iou"] = {"value": sum(row["iou"] for row in rows) / n if n else None, "n": n}
    boxless = sum(1 for row in rows if not row["boxes_written"])
    extra["no_box_rate"] = {"value": boxless / n if n else None, "n": n, "count": boxless}
    return Aggregate(len(pairs), count(pairs, "hit"), extra)


METRIC = Metric("grounding", PRIMARY, LENIENT, truth_problem=truth_problem, score=score, aggregate=aggregate,
                needs_size=True)
