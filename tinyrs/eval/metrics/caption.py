"""``caption``: GeoVLM-R1's caption metrics together on one task: ROUGE-1 and ROUGE-L (``rouge``) and METEOR
(``meteor``), each computed by its own module, so one generation pass gives all three. Headline ROUGE-L, as
``rouge``; METEOR, like that module, needs its Java runtime and fails loudly without it.
"""
from __future__ import annotations

from tinyrs.eval.metrics import meteor, rouge
from tinyrs.eval.metrics.base import Aggregate, Metric


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    return {**rouge.score(task, row, parsed, tags), **meteor.score(task, row, parsed, tags)}


def aggregate(rows: list[dict]) -> Aggregate:
    words, corpus = rouge.aggregate(rows), meteor.aggregate(rows)
    return Aggregate(words.n_lenient, words.correct_lenient, {**words.extra, **corpus.extra})


METRIC = Metric("caption", rouge.PRIMARY, rouge.LENIENT, truth_problem=lambda task, answer, types: None,
                score=score, aggregate=aggregate)
