"""Eval metrics by name: the values ``eval.tasks.<key>.metric`` may take, like ``grpo.rewards.REWARDS``.

A metric is one module of this package holding its ground-truth check, per-row scoring, aggregation and names as
a ``METRIC`` (``base.Metric``); ``tinyrs.eval.scoring`` dispatches through ``METRICS``. Adding one: a module, its
line below, and its name in the schema's enum (``tinyrs/schema/config.schema.yaml``, eval.tasks' metric;
tests/test_eval_metrics.py checks the two agree). docs/design.md, "Adding an eval metric".
"""
from tinyrs.eval.metrics import (accuracy, caption, detection_map, grounding, jaccard, lhrs_accuracy, meteor,
                                 multilabel, rouge)
from tinyrs.eval.metrics.base import Aggregate, Metric

METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        accuracy.METRIC,
        grounding.METRIC,
        lhrs_accuracy.METRIC,
        multilabel.METRIC,
        detection_map.METRIC,
        rouge.METRIC,
        meteor.METRIC,
        caption.METRIC,
        jaccard.METRIC,
    )
}

__all__ = ["METRICS", "Aggregate", "Metric"]
