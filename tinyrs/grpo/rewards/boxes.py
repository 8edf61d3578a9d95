"""Box rewards: single-box grounding IoU and multi-box detection, on the 0-1000 grid.

Boxes are read with ``tinyrs.answers.parse_boxes`` (``[[x1, y1, x2, y2]]``,
``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``, JSON ``bbox_2d``) and made canonical (corners ordered,
clipped to the grid); a predicted box with no area scores 0. The ground truth always comes from the
solution: the reference built it from the model's own numbers, so any well-formed box scored 1.0.
"""
from __future__ import annotations

from tinyrs.answers import Box, canonical_box, iou, parse_boxes
from tinyrs.io import DataError

MATCH_IOU = 0.5


def truth_boxes(truth: str) -> list[Box]:
    """The canonical boxes of a solution's answer; a solution without one is a data error."""
    boxes = [canonical_box(box) for box in parse_boxes(truth)]
    if not boxes or any(box is None for box in boxes):
        raise DataError(f"solution answer must hold boxes with an area on the 0-1000 grid, got {truth!r:.200}")
    return boxes


def _predicted(prediction: str | None) -> tuple[list[Box], int]:
    """Canonical predicted boxes with an area, and how many boxes were written (degenerate ones included)."""
    written = parse_boxes(prediction)
    return [box for box in map(canonical_box, written) if box is not None], len(written)


def box_iou_reward(prediction: str | None, truth: str) -> float:
    """IoU of the first predicted box with the first ground-truth box. Range [0, 1]; no box scores 0."""
    written = parse_boxes(prediction)
    first = canonical_box(written[0]) if written else None
    return iou(first, truth_boxes(truth)[0]) if first else 0.0


def detection_reward(prediction: str | None, truth: str) -> float:
    """GeoVLM-R1 detection reward, guarded against box spam. Range [0, 1].

    ``(1/N) * sum over the N ground-truth boxes of the best IoU with any predicted box``, multiplied by
    ``min(1, N / M)`` for M written boxes: without the guard, tiling the image with boxes scores near 1;
    with it each surplus box dilutes the reward.
    """
    gold = truth_boxes(truth)
    predicted, written = _predicted(prediction)
    if not predicted:
        return 0.0
    mean_best = sum(max(iou(p, g) for p in predicted) for g in gold) / len(gold)
    return mean_best * min(1.0, len(gold) / written)


def detection_f1_reward(prediction: str | None, truth: str, threshold: float = MATCH_IOU) -> float:
    """F1 of greedy one-to-one matching at IoU >= ``threshold`` (VLM-R1 family). Range [0, 1].

    Pairs are matched in order of decreasing IoU, each box used at most once; with TP matches,
    M written boxes and N ground-truth boxes, F1 = 2 TP / (M + N). False positives (surplus or
    degenerate boxes) lower the score, which is the guard against box spam.
    """
    gold = truth_boxes(truth)
    predicted, written = _predicted(prediction)
    pairs = sorted(
        ((overlap, p, g) for p, box in enumerate(predicted) for g, truth_box in enumerate(gold)
         if (overlap := iou(box, truth_box)) >= threshold),
        reverse=True,
    )
    used_pred: set[int] = set()
    used_gold: set[int] = set()
    for _, p, g in pairs:
        if p not in used_pred and g not in used_gold:
            used_pred.add(p)
            used_gold.add(g)
    return 2 * len(used_gold) / (written + len(gold))
