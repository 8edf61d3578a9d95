"""``rouge``: captions (GeoVLM-R1's RSICD), ROUGE-1 and ROUGE-L F-measures by Google's ``rouge-score``.

Per sample, ``RougeScorer(["rouge1", "rougeL"]).score(ground truth, answer)`` with the package's own tokenizer
(lower case, runs of letters and digits) and no stemming; the task's value is the mean over samples. A
ground truth holding several reference captions is not split: it is one reference. Headline ROUGE-L, ROUGE-1
beside it. Rows are ``correct`` when the texts are equal after ``answers.normalize_text`` (``exact_match``).
Strict: the located answer (none: 0); lenient: the text the reference evaluator reads
(``lenient.reference_answer_text``).
"""
from __future__ import annotations

from functools import lru_cache

from tinyrs.answers import normalize_text
from tinyrs.eval.lenient import reference_answer_text
from tinyrs.eval.metrics.base import Aggregate, Metric, count, entry, mean_entry

PRIMARY, LENIENT = "rougeL", "rougeL_lenient"
TYPES = ("rouge1", "rougeL")


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(list(TYPES), use_stemmer=False)


def rouge_f(answer: str, truth: str) -> dict[str, float]:
    """ROUGE-1 and ROUGE-L F-measures of ``answer`` against ``truth``, in [0, 1]."""
    return {name: value.fmeasure for name, value in _scorer().score(truth, answer).items()}


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    lenient = reference_answer_text(row["pred"], *tags)
    truth = normalize_text(row["answer"])
    return {**rouge_f(parsed or "", row["answer"]),
            **{f"{name}_lenient": value for name, value in rouge_f(lenient, row["answer"]).items()},
            "correct": normalize_text(parsed) == truth, "correct_lenient": normalize_text(lenient) == truth}


def aggregate(rows: list[dict]) -> Aggregate:
    extra = {f"{name}{suffix}": mean_entry([row[f"{name}{suffix}"] for row in rows])
             for name in TYPES for suffix in ("", "_lenient")}
    extra["exact_match"] = entry(count(rows, "correct"), len(rows))
    return Aggregate(len(rows), count(rows, "correct_lenient"), extra)


METRIC = Metric("rouge", PRIMARY, LENIENT, truth_problem=lambda task, answer, types: None, score=score,
                aggregate=aggregate)
