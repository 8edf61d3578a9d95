"""``lhrs_accuracy``: LHRS-Bench multiple choice, overall and per question type.

Strict: the option letter named by the answer equals the ground truth's. Lenient: the reference's rule
(``lenient.reference_lhrs_match``). A record counts once for each of its type ids (``answers.LHRS_TYPES``).
"""
from __future__ import annotations

from tinyrs.answers import LHRS_TYPES, option_letter
from tinyrs.eval.lenient import reference_lhrs_match
from tinyrs.eval.metrics.base import Aggregate, Metric, Problem, count, entry, lenient_per_row

PRIMARY, LENIENT = "accuracy", "accuracy_lenient"


def valid_types(types) -> bool:
    return (isinstance(types, list) and len(types) > 0
            and all(isinstance(t, int) and not isinstance(t, bool) and t in LHRS_TYPES for t in types))


def truth_problem(task, answer: str, types) -> Problem | None:
    if option_letter(answer) is None:
        return "answer_without_option", f"no option letter (A-H) in the ground truth {answer!r}"
    if not valid_types(types):
        return "bad_type", f"type {types!r} is not a non-empty list of LHRS-Bench type ids 1-11"
    return None


def score(task, row: dict, parsed: str | None, tags: tuple[str, str]) -> dict:
    option = option_letter(parsed)
    return {"option": option, "correct": option is not None and option == option_letter(row["answer"]),
            "correct_lenient": reference_lhrs_match(row["pred"], row["answer"], *tags)}


def aggregate(rows: list[dict]) -> Aggregate:
    per_type = {}
    for type_id, name in LHRS_TYPES.items():
        subset = [row for row in rows if type_id in row["type"]]
        per_type[f"{PRIMARY}_{name}"] = entry(count(subset, "correct"), len(subset))
        per_type[f"{LENIENT}_{name}"] = entry(count(subset, "correct_lenient"), len(subset))
    return Aggregate(*lenient_per_row(rows), per_type)


METRIC = Metric("lhrs_accuracy", PRIMARY, LENIENT, truth_problem=truth_problem, score=score, aggregate=aggregate,
                reads_types=True)
