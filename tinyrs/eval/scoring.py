"""Per-sample scoring and per-task metrics: strict scores, with the reference's lenient ones beside them.

Strict rules (what the report leads with):
- accuracy: the located answer equals the ground truth after normalisation (``answers.closed_answers_match``);
  a completion with no locatable answer (reasoning never closed) is wrong. The answer is the LAST answer block.
- grounding: Precision@IoU 0.5 over *all* samples; a completion without a usable box is a miss
  (the reference dropped it from the denominator, REFERENCE.md §3.4). The first box written (any form
  ``answers.parse_boxes`` reads; corners ordered, clipped to the grid) is the answer; it is scaled to pixels
  with ``size`` = [width, height]. Also by ground-truth box size in pixels (small < 32², medium < 96², large:
  upper bounds exclusive), the mean IoU, and ``no_box_rate``: the share of completions with no box written
  in any form ``parse_boxes`` reads.
- lhrs_accuracy: the option letter named by the answer equals the ground truth's; overall and per question type.

The lenient column is the reference evaluator's verdict, rule for rule (``lenient.py`` lists the rules):
``accuracy_lenient`` / ``accuracy_lenient_<type>``, and for grounding ``precision@0.5_lenient`` and
``precision@0.5_lenient_<bucket>`` over the reference's pairs (a completion without a box it reads adds nothing).
Grounding rows carry ``lenient_pairs`` (one ``{iou, hit, bucket}`` per pair) and ``correct_lenient`` = the number
of hit pairs, None when the row adds nothing to the reference's denominator.
"""
from __future__ import annotations

import math
from numbers import Real

from tinyrs.answers import (
    BOX_SCALE,
    Box,
    canonical_box,
    closed_answers_match,
    iou,
    option_letter,
    parse_boxes,
    parse_completion,
)
from tinyrs.eval.lenient import (
    REFERENCE_SIZE_BUCKETS,
    reference_closed_match,
    reference_grounding_pairs,
    reference_lhrs_match,
)
from tinyrs.eval.tasks import LHRS_TYPES, Task

IOU_THRESHOLD = 0.5
SIZE_BUCKETS = (("small", 32**2), ("medium", 96**2), ("large", math.inf))  # by area in pixels, upper bounds exclusive


def valid_size(size) -> bool:
    """``size`` is ``[width, height]`` of the original image, both positive."""
    return (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, Real) and not isinstance(v, bool) and v > 0 for v in size))


def valid_types(types) -> bool:
    return (isinstance(types, list) and len(types) > 0
            and all(isinstance(t, int) and not isinstance(t, bool) and t in LHRS_TYPES for t in types))


def ground_truth_box(task: Task, answer: str) -> Box | None:
    """The first box of the ground truth, corners ordered; in the task's units (pixels or the 0-1000 grid)."""
    boxes = parse_boxes(answer)
    if not boxes:
        return None
    if task.answer_boxes == "normalized":
        return canonical_box(boxes[0])
    x1, x2 = sorted((boxes[0][0], boxes[0][2]))
    y1, y2 = sorted((boxes[0][1], boxes[0][3]))
    return (x1, y1, x2, y2) if x2 > x1 and y2 > y1 else None


def ground_truth_problem(task: Task, answer, size, types) -> tuple[str, str] | None:
    """Why a sample cannot be scored, as ``(reason, detail)``; None when it can."""
    if not isinstance(answer, str) or not answer.strip():
        return "empty_answer", f"ground-truth answer {answer!r} is empty or not text"
    if size is not None and not valid_size(size):
        return "bad_size", f"size {size!r} is not [width, height] with positive numbers"
    if task.metric == "grounding" and ground_truth_box(task, answer) is None:
        return "answer_without_box", f"no box with an area in the ground truth {answer!r}"
    if task.metric == "lhrs_accuracy":
        if option_letter(answer) is None:
            return "answer_without_option", f"no option letter (A-H) in the ground truth {answer!r}"
        if not valid_types(types):
            return "bad_type", f"type {types!r} is not a non-empty list of LHRS-Bench type ids 1-11"
    return None


def size_bucket(area_px: float) -> str:
    return next(name for name, bound in SIZE_BUCKETS if area_px < bound)


def _to_task_units(box: Box, task: Task, size) -> Box:
    """A box on the 0-1000 grid in the units of the task's ground truth. ``size`` is [width, height]."""
    if task.answer_boxes == "normalized":
        return box
    width, height = size
    return (box[0] * width / BOX_SCALE, box[1] * height / BOX_SCALE,
            box[2] * width / BOX_SCALE, box[3] * height / BOX_SCALE)


def _area_px(box: Box, task: Task, size) -> float:
    width, height = size
    area = (box[2] - box[0]) * (box[3] - box[1])
    return area if task.answer_boxes == "pixels" else area * width * height / BOX_SCALE**2


def score_row(task: Task, row: dict, chat: dict) -> dict:
    """The scored fields of one prediction row (needs ``pred``, ``answer``; ``size`` for grounding)."""
    pred = row["pred"]  # the lenient column reads it as str(pred): None is the text "None", as in the reference
    tags = chat["reasoning_tag"], chat["answer_tag"]
    parsed = parse_completion(pred or "", *tags).answer
    if task.metric == "accuracy":
        return {"parsed": parsed, "correct": closed_answers_match(parsed, row["answer"]),
                "correct_lenient": reference_closed_match(pred, row["answer"], *tags)}
    if task.metric == "lhrs_accuracy":
        option = option_letter(parsed)
        return {"parsed": parsed, "option": option,
                "correct": option is not None and option == option_letter(row["answer"]),
                "correct_lenient": reference_lhrs_match(pred, row["answer"], *tags)}
    truth = ground_truth_box(task, row["answer"])
    written = parse_boxes(parsed)
    box = canonical_box(written[0]) if written else None
    overlap = iou(_to_task_units(box, task, row["size"]), truth) if box else 0.0
    pairs = reference_grounding_pairs(pred, row["answer"], row["size"], task.answer_boxes, *tags)
    return {"parsed": parsed, "box": list(box) if box else None, "boxes_written": len(written), "iou": overlap,
            "bucket": size_bucket(_area_px(truth, task, row["size"])), "correct": overlap >= IOU_THRESHOLD,
            "lenient_pairs": [pair._asdict() for pair in pairs],
            "correct_lenient": sum(pair.hit for pair in pairs) if pairs else None}


def metric_names(metric: str) -> tuple[str, str]:
    """The headline (strict) metric of a task kind and its lenient counterpart."""
    if metric == "grounding":
        return "precision@0.5", "precision@0.5_lenient"
    return "accuracy", "accuracy_lenient"


def _entry(correct: int, n: int) -> dict:
    return {"value": correct / n if n else None, "n": n, "correct": correct}


def aggregate(task: Task, rows: list[dict]) -> dict:
    """Metrics of scored rows: counts, and ``metrics`` = name -> {value (fraction or None), n, correct}.

    ``n_lenient`` / ``correct_lenient``: the lenient column's denominator and numerator (for grounding,
    the reference's pairs; otherwise every row).
    """
    n = len(rows)
    correct = sum(bool(row["correct"]) for row in rows)
    primary, lenient = metric_names(task.metric)
    if task.metric == "grounding":
        pairs = [pair for row in rows for pair in row["lenient_pairs"]]
        n_lenient, correct_lenient = len(pairs), sum(bool(pair["hit"]) for pair in pairs)
    else:
        n_lenient, correct_lenient = n, sum(bool(row["correct_lenient"]) for row in rows)
    metrics = {primary: _entry(correct, n), lenient: _entry(correct_lenient, n_lenient)}
    if task.metric == "grounding":
        for bucket, _ in SIZE_BUCKETS:
            subset = [row for row in rows if row["bucket"] == bucket]
            metrics[f"{primary}_{bucket}"] = _entry(sum(bool(row["correct"]) for row in subset), len(subset))
        for bucket, _ in REFERENCE_SIZE_BUCKETS:
            subset = [pair for pair in pairs if pair["bucket"] == bucket]
            metrics[f"{lenient}_{bucket}"] = _entry(sum(bool(pair["hit"]) for pair in subset), len(subset))
        metrics["mean_iou"] = {"value": sum(row["iou"] for row in rows) / n if n else None, "n": n}
        boxless = sum(1 for row in rows if not row["boxes_written"])
        metrics["no_box_rate"] = {"value": boxless / n if n else None, "n": n, "count": boxless}
    if task.metric == "lhrs_accuracy":
        for type_id, name in LHRS_TYPES.items():
            subset = [row for row in rows if type_id in row["type"]]
            metrics[f"{primary}_{name}"] = _entry(sum(bool(row["correct"]) for row in subset), len(subset))
            metrics[f"{lenient}_{name}"] = _entry(sum(bool(row["correct_lenient"]) for row in subset), len(subset))
    return {"n": n, "correct": correct, "n_lenient": n_lenient, "correct_lenient": correct_lenient,
            "primary": primary, "lenient": lenient, "metrics": metrics}
