"""``detection_map``: detection with several boxes per sample (GeoVLM-R1), mAP@0.5 and mAP@0.25 by torchmetrics.

Every box of the ground truth (``answers.parse_boxes``; corners ordered, ``grounding.truth_box``) and every box
of the answer (corners ordered, clipped to the 0-1000 grid, scaled to pixels with ``size`` = [width, height]
when the task's ``answer_boxes`` is ``pixels``; boxes without an area dropped) go to torchmetrics'
``MeanAveragePrecision`` (pycocotools backend: COCO's 101-point interpolated AP, area range "all", at most
``MAX_BOXES`` boxes per sample), one threshold per value. All boxes are one class: the question names the
object to find. A VLM writes no confidence, so every box scores 1: the ranking COCO's AP needs is then the
order of the samples (stable sort), and AP is the area under one precision-recall path per task; it is what
detection papers on VLMs report, but it is no ranking-based AP of a detector. Rows are ``correct`` when every
ground-truth box has a distinct answer box at IoU >= 0.5 and no box is left over (``all_found``, a proportion).
Strict: the located answer; lenient: the text the reference evaluator reads (``lenient.reference_answer_text``).
"""
from __future__ import annotations

from tinyrs.answers import Box, canonical_box, iou, parse_boxes
from tinyrs.eval.lenient import reference_answer_text
from tinyrs.eval.metrics.base import Aggregate, Metric, Problem, count, entry
from tinyrs.eval.metrics.grounding import to_task_units, truth_box

PRIMARY, LENIENT = "map@0.5", "map@0.5_lenient"
THRESHOLDS = {"map@0.5": 0.5, "map@0.25": 0.25}
MAX_BOXES = 100


def truth_boxes(task, answer: str) -> list[Box | None]:
    return [truth_box(task, box) for box in parse_boxes(answer)]


def answer_boxes(task, text: str | None, size) -> list[Box]:
    boxes = [box for box in map(canonical_box, parse_boxes(text)) if box is not None]
    return [to_task_units(box, task, size) for box in boxes]


def mean_average_precision(predicted: list[list[Box]], truth: list[list[Box]], threshold: float) -> float:
    """COCO mAP at one IoU threshold of unscored boxes, one class (torchmetrics with pycocotools), in [0, 1]."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    def boxes(values: list[Box]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64).reshape(-1, 4)

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", iou_thresholds=[threshold],
                                  max_detection_thresholds=[1, 10, MAX_BOXES], backend="pycocotools")
    metric.update([{"boxes": boxes(p), "scores": torch.ones(len(p)), "labels": torch.zeros(len(p), dtype=torch.long)}
                   for p in predicted],
                  [{"boxes": boxes(t), "labels": torch.zeros(len(t), dtype=torch.long)} for t in truth])
    return max(0.0, float(metric.compute()["map"]))  # -1: no ground-truth box at all (never: truth_problem)


def all_found(predicted: list[Box], truth: list[Box]) -> bool:
    """Each truth box matched by a distinct answer box at IoU >= 0.5, greedily by IoU, and no box left over."""
    if len(predicted) != len(truth):
        return False
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)), reverse=True)
    used_p, used_t = set(), set()
    for overlap, i, j in pairs:
        if overlap >= 0.5 and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_t) == len(truth)


def truth_problem(task, answer: str, types) -> Problem | None:
    boxes = truth_boxes(task, answer)
    if not boxes or None in boxes:
        return "answer_without_box", f"no box, or a box without an area, in the ground truth {answer!r}"
    return None


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    truth = truth_boxes(task, row["answer"])
    boxes = answer_boxes(task, parsed, row["size"])
    lenient = answer_boxes(task, reference_answer_text(row["pred"], *tags), row["size"])
    return {"truth_boxes": [list(b) for b in truth], "boxes": [list(b) for b in boxes],
            "boxes_lenient": [list(b) for b in lenient],
            "correct": all_found(boxes, truth), "correct_lenient": all_found(lenient, truth)}


def aggregate(rows: list[dict]) -> Aggregate:
    n = len(rows)
    truth = [row["truth_boxes"] for row in rows]
    extra = {}
    for name, threshold in THRESHOLDS.items():
        for suffix, key in (("", "boxes"), ("_lenient", "boxes_lenient")):
            value = mean_average_precision([row[key] for row in rows], truth, threshold) if rows else None
            extra[f"{name}{suffix}"] = {"value": value, "n": n}
    extra["all_found"] = entry(count(rows, "correct"), n)
    return Aggregate(n, count(rows, "correct_lenient"), extra)


METRIC = Metric("detection_map", PRIMARY, LENIENT, truth_problem=truth_problem, score=score, aggregate=aggregate,
                needs_size=True)
