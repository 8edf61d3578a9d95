"""The eval metric registry: the schema's metric names are its keys, and scoring goes through it alone, so a new
metric is a module and its line in ``METRICS``. The scores themselves: tests/test_eval_scoring.py and
tests/test_eval_reference.py."""
from __future__ import annotations

import pytest
import yaml

from tinyrs.config import SCHEMA_PATH, ConfigError
from tinyrs.eval import metrics
from tinyrs.eval.metrics import METRICS, Aggregate, Metric
from tinyrs.eval.scoring import aggregate, ground_truth_problem, metric_names, score_row
from tinyrs.eval.tasks import Task, task_from_entry
from tinyrs.settings import ChatSettings

CHAT = ChatSettings(system_prompt="", reasoning_system_prompt="", reasoning_tag="reasoning", answer_tag="answer")


def test_the_schema_names_exactly_the_registered_metrics():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    task = schema["properties"]["eval"]["properties"]["tasks"]["additionalProperties"]
    assert task["properties"]["metric"]["enum"] == list(METRICS), \
        "eval.tasks' metric enum in tinyrs/schema/config.schema.yaml must list tinyrs.eval.metrics.METRICS"


def test_each_metric_is_registered_under_its_name():
    assert all(isinstance(metric, Metric) and metric.name == name for name, metric in METRICS.items())
    assert metric_names("grounding") == ("precision@0.5", "precision@0.5_lenient")
    assert metric_names("accuracy") == metric_names("lhrs_accuracy") == ("accuracy", "accuracy_lenient")


def test_a_task_with_an_unregistered_metric_is_refused():
    with pytest.raises(ConfigError, match="eval.tasks.x.metric: 'bleu' is not one of"):
        task_from_entry("x", {"file": "x.json", "metric": "bleu", "family": "f"})


def _exact_length() -> Metric:
    """A metric as a new module would define it: the answer has as many characters as the ground truth."""

    def score(task, row, parsed, tags):
        return {"correct": len(parsed or "") == len(row["answer"]), "correct_lenient": bool(parsed)}

    def aggregate_rows(rows):
        return Aggregate(len(rows), sum(row["correct_lenient"] for row in rows),
                         {"mean_length": {"value": sum(len(row["parsed"] or "") for row in rows) / len(rows)}})

    def truth_problem(task, answer, types):
        return ("too_long", answer) if len(answer) > 10 else None

    return Metric("exact_length", "length_match", "answered", truth_problem, score, aggregate_rows)


def test_a_registered_metric_is_all_scoring_needs(monkeypatch):
    monkeypatch.setitem(metrics.METRICS, "exact_length", _exact_length())
    task = task_from_entry("t", {"file": "t.json", "metric": "exact_length", "family": "f"})
    assert task == Task("t", "t.json", "exact_length", "f")
    assert ground_truth_problem(task, "a" * 11, None, None) == ("too_long", "a" * 11)
    assert ground_truth_problem(task, " ", None, None)[0] == "empty_answer"       # the shared checks come first
    rows = [{"pred": pred, "answer": "abc", **score_row(task, {"pred": pred, "answer": "abc"}, CHAT)}
            for pred in ("<answer>xyz</answer>", "ab", None)]
    assert [row["parsed"] for row in rows] == ["xyz", "ab", ""]
    result = aggregate(task, rows)
    assert (result["primary"], result["lenient"], result["n"], result["correct"]) == ("length_match", "answered", 3, 1)
    assert result["metrics"] == {"length_match": {"value": 1 / 3, "n": 3, "correct": 1},
                                 "answered": {"value": 2 / 3, "n": 3, "correct": 2},
                                 "mean_length": {"value": 5 / 3}}
