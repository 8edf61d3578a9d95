"""``multilabel``: multi-label classification (GeoVLM-R1's BigEarthNet task), scored by scikit-learn.

Labels are ``answers.split_labels`` of the answer and of the ground truth (commas, semicolons, newlines, "and";
normalised, each once). Headline: the sample-averaged F1 (``precision_recall_fscore_support(average="samples")``:
per sample, then the mean), with the sample-averaged precision and recall beside it (GeoVLM-R1 reports recall);
an empty answer scores 0 everywhere (``zero_division=0``). Rows are ``correct`` when the label sets are equal
(``exact_match``, a proportion). Strict: the located answer; lenient: the text the reference evaluator reads
(``lenient.reference_answer_text``): there is no reference rule for this task, only its answer extraction.
"""
from __future__ import annotations

from tinyrs.answers import split_labels
from tinyrs.eval.lenient import reference_answer_text
from tinyrs.eval.metrics.base import Aggregate, Metric, Problem, count, entry, indicator_matrices

PRIMARY, LENIENT = "f1", "f1_lenient"
SCORES = ("precision", "recall", "f1")


def label_scores(predicted: list[list[str]], truth: list[list[str]]) -> dict[str, float]:
    """Sample-averaged precision, recall and F1 of label lists (scikit-learn), in [0, 1]."""
    from sklearn.metrics import precision_recall_fscore_support

    precision, recall, f1, _ = precision_recall_fscore_support(
        *indicator_matrices(predicted, truth), average="samples", zero_division=0)
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def truth_problem(task, answer: str, types) -> Problem | None:
    return None if split_labels(answer) else ("answer_without_labels", f"no label in the ground truth {answer!r}")


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    truth = set(split_labels(row["answer"]))
    labels, lenient = split_labels(parsed), split_labels(reference_answer_text(row["pred"], *tags))
    return {"labels": labels, "labels_lenient": lenient, "correct": set(labels) == truth,
            "correct_lenient": set(lenient) == truth}


def aggregate(rows: list[dict]) -> Aggregate:
    n = len(rows)
    truth = [split_labels(row["answer"]) for row in rows]
    extra = {}
    for suffix, key in (("", "labels"), ("_lenient", "labels_lenient")):
        scores = label_scores([row[key] for row in rows], truth) if rows else dict.fromkeys(SCORES)
        extra.update({f"{name}{suffix}": {"value": value, "n": n} for name, value in scores.items()})
    extra["exact_match"] = entry(count(rows, "correct"), n)
    return Aggregate(n, count(rows, "correct_lenient"), extra)


METRIC = Metric("multilabel", PRIMARY, LENIENT, truth_problem=truth_problem, score=score, aggregate=aggregate)
