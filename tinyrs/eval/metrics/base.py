"""What a metric is: the contract every module of this package fills, and the counting helpers they share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:  # tasks.py validates task metrics against the registry: import the type only
    from tinyrs.eval.tasks import Task

Problem = tuple[str, str]  # (reason, detail) of a sample that cannot be scored


class Aggregate(NamedTuple):
    """A metric's part of a task's metrics: the lenient column's denominator and numerator, and the metrics
    reported after the strict and lenient headline ones (breakdowns, secondary values)."""

    n_lenient: int
    correct_lenient: int
    extra: dict[str, dict]


@dataclass(frozen=True)
class Metric:
    """One way of scoring a task (config ``eval.tasks.<key>.metric`` names it).

    - ``primary`` / ``lenient``: the names of the strict headline metric and of its reference-compatible
      counterpart (``lenient.py``).
    - ``truth_problem(task, answer, types)``: why a ground truth cannot be scored by this metric, as
      ``(reason, detail)``, or None. The checks every metric shares (an answer, a valid size) come first, in
      ``scoring.ground_truth_problem``.
    - ``score(task, row, parsed, tags)``: the row's scored fields after ``parsed`` (the answer the strict rules
      read); they include ``correct`` (strict) and ``correct_lenient``. ``tags``: the chat's reasoning and answer tag.
    - ``aggregate(rows)``: the scored rows' ``Aggregate``. A metric whose headline is no proportion of rows (ROUGE,
      METEOR, mAP: a mean or a corpus value) puts its ``primary`` and ``lenient`` entries, ``{value, n}``, in
      ``extra``: they replace the row counts there (the report gives such entries no interval); its rows' ``correct``
      then stays a secondary count (e.g. exact answers) behind the document's ``correct``.
    - ``needs_size``: scoring reads the image's ``size``; ``reads_types``: samples keep their LHRS-Bench type ids.
    """

    name: str
    primary: str
    lenient: str
    truth_problem: Callable[[Task, str, Any], Problem | None]
    score: Callable[[Task, dict, str | None, tuple[str, str]], dict]
    aggregate: Callable[[list[dict]], Aggregate]
    needs_size: bool = False
    reads_types: bool = False


def entry(correct: int, n: int) -> dict:
    """A proportion as the metrics files hold it: value (None without samples), n, correct."""
    return {"value": correct / n if n else None, "n": n, "correct": correct}


def mean_entry(values: list[float]) -> dict:
    """A mean over rows as the metrics files hold it: value (None without rows) and n; no count, no interval."""
    return {"value": sum(values) / len(values) if values else None, "n": len(values)}


def count(rows: list[dict], key: str) -> int:
    return sum(bool(row[key]) for row in rows)


def lenient_per_row(rows: list[dict]) -> tuple[int, int]:
    """The lenient column counted over rows, one verdict each (every metric but grounding)."""
    return len(rows), count(rows, "correct_lenient")


NO_CLASS = "\x00"  # a NUL character: never a word nor a label of a real answer


def indicator_matrices(predicted: list[list[str]], truth: list[list[str]]):
    """``(truth, predicted)`` as scikit-learn multi-label indicator matrices over one label set.

    The label set has one class no sample has: with a single class the matrix would read as binary, not
    multi-label; an all-zero column changes no per-sample value."""
    from sklearn.preprocessing import MultiLabelBinarizer

    binarizer = MultiLabelBinarizer().fit(predicted + truth + [[NO_CLASS]])
    return binarizer.transform(truth), binarizer.transform(predicted)
