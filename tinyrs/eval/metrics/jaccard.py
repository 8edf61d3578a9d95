"""``jaccard``: short free answers (GeoVLM-R1's VQA), the Jaccard index of word sets, scored by scikit-learn.

Words: ``\\w+`` runs of ``answers.normalize_text`` of the answer and of the ground truth. Headline: the mean over
samples of |A & B| / |A | B| (``jaccard_score(average="samples")``); an empty answer scores 0
(``zero_division=0``). Rows are ``correct`` when the word sets are equal (``exact_match``, a proportion).
Strict: the located answer; lenient: the text the reference evaluator reads (``lenient.reference_answer_text``).
"""
from __future__ import annotations

import re

from tinyrs.answers import normalize_text
from tinyrs.eval.lenient import reference_answer_text
from tinyrs.eval.metrics.base import Aggregate, Metric, Problem, count, entry, indicator_matrices

PRIMARY, LENIENT = "jaccard", "jaccard_lenient"
_WORD = re.compile(r"\w+")


def words(text: str | None) -> list[str]:
    return list(dict.fromkeys(_WORD.findall(normalize_text(text))))


def mean_jaccard(predicted: list[list[str]], truth: list[list[str]]) -> float:
    """The sample-averaged Jaccard index of word lists (scikit-learn), in [0, 1]."""
    from sklearn.metrics import jaccard_score

    return float(jaccard_score(*indicator_matrices(predicted, truth), average="samples", zero_division=0))


def truth_problem(task, answer: str, types) -> Problem | None:
    return None if words(answer) else ("answer_without_words", f"no word in the ground truth {answer!r}")


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    truth = set(words(row["answer"]))
    answer, lenient = words(parsed), words(reference_answer_text(row["pred"], *tags))
    return {"words": answer, "words_lenient": lenient, "correct": set(answer) == truth,
            "correct_lenient": set(lenient) == truth}


def aggregate(rows: list[dict]) -> Aggregate:
    n = len(rows)
    truth = [words(row["answer"]) for row in rows]
    extra = {name: {"value": mean_jaccard([row[key] for row in rows], truth) if rows else None, "n": n}
             for name, key in ((PRIMARY, "words"), (LENIENT, "words_lenient"))}
    extra["exact_match"] = entry(count(rows, "correct"), n)
    return Aggregate(n, count(rows, "correct_lenient"), extra)


METRIC = Metric("jaccard", PRIMARY, LENIENT, truth_problem=truth_problem, score=score, aggregate=aggregate)
