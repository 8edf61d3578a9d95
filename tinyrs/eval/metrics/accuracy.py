"""``accuracy``: closed answers (classification, VQA).

Strict: the located answer equals the ground truth after normalisation (``answers.closed_answers_match``); a
completion with no locatable answer (reasoning never closed) is wrong. Lenient: the reference's substring rule
(``lenient.reference_closed_match``).
"""
from __future__ import annotations

from tinyrs.answers import closed_answers_match
from tinyrs.eval.lenient import reference_closed_match
from tinyrs.eval.metrics.base import Aggregate, Metric, lenient_per_row


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    return {"correct": closed_answers_match(parsed, row["answer"]),
            "correct_lenient": reference_closed_match(row["pred"], row["answer"], *tags)}


def aggregate(rows: list[dict]) -> Aggregate:
    return Aggregate(*lenient_per_row(rows), {})


METRIC = Metric("accuracy", "accuracy", "accuracy_lenient", truth_problem=lambda task, answer, types: None,
                score=score, aggregate=aggregate)
