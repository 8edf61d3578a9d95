"""Per-sample scoring and per-task metrics: strict scores, with the reference's lenient ones beside them.

Each task names a metric (``accuracy``, ``grounding``, ``lhrs_accuracy``, GeoVLM-R1's ``multilabel``,
``detection_map``, ``rouge``, ``meteor``, ``caption``, ``jaccard``): a module of ``tinyrs.eval.metrics``
holds its rules, strict and lenient, and its breakdowns. This module does what every metric shares and
dispatches through ``METRICS``: the ground-truth checks, the answer the strict rules read (the LAST answer block,
none when reasoning is never closed), and the task's counts. The lenient column is the reference evaluator's
verdict, rule for rule (``lenient.py`` lists the rules).
"""
from __future__ import annotations

from numbers import Real

from tinyrs.answers import parse_completion
from tinyrs.eval.metrics import METRICS
from tinyrs.eval.metrics.base import count, entry
from tinyrs.eval.metrics.grounding import ground_truth_box, size_bucket
from tinyrs.eval.tasks import Task
from tinyrs.settings import ChatSettings

__all__ = ["aggregate", "ground_truth_box", "ground_truth_problem", "metric_names", "score_row", "size_bucket",
           "valid_size"]


def valid_size(size) -> bool:
    """``size`` is ``[width, height]`` of the original image, both positive."""
    return (isinstance(size, (list, tuple)) and len(size) == 2
            and all(isinstance(v, Real) and not isinstance(v, bool) and v > 0 for v in size))


def ground_truth_problem(task: Task, answer, size, types) -> tuple[str, str] | None:
    """Why a sample cannot be scored, as ``(reason, detail)``; None when it can."""
    if not isinstance(answer, str) or not answer.strip():
        return "empty_answer", f"ground-truth answer {answer!r} is empty or not text"
    if size is not None and not valid_size(size):
        return "bad_size", f"size {size!r} is not [width, height] with positive numbers"
    return METRICS[task.metric].truth_problem(task, answer, types)


def score_row(task: Task, row: dict, chat: ChatSettings) -> dict:
    """The scored fields of one prediction row (needs ``pred``, ``answer``; ``size`` for grounding)."""
    pred = row["pred"]  # the lenient column reads it as str(pred): None is the text "None", as in the reference
    tags = chat.reasoning_tag, chat.answer_tag
    parsed = parse_completion(pred or "", *tags).answer
    return {"parsed": parsed, **METRICS[task.metric].score(task, row, parsed, tags)}


def metric_names(metric: str) -> tuple[str, str]:
    """The headline (strict) metric of a task kind and its lenient counterpart."""
    return METRICS[metric].primary, METRICS[metric].lenient


def aggregate(task: Task, rows: list[dict]) -> dict:
    """Metrics of scored rows: counts, and ``metrics`` = name -> {value (fraction or None), n, correct}.

    ``n_lenient`` / ``correct_lenient``: the lenient column's denominator and numerator (for grounding,
    the reference's pairs; otherwise every row). A metric's ``extra`` entries come last and may replace the
    headline pair's (metrics whose headline is no proportion, ``base.Metric``).
    """
    metric = METRICS[task.metric]
    n, correct = len(rows), count(rows, "correct")
    n_lenient, correct_lenient, extra = metric.aggregate(rows)
    metrics = {metric.primary: entry(correct, n), metric.lenient: entry(correct_lenient, n_lenient), **extra}
    return {"n": n, "correct": correct, "n_lenient": n_lenient, "correct_lenient": correct_lenient,
            "primary": metric.primary, "lenient": metric.lenient, "metrics": metrics}
