"""Rewards per task or answer type, combined into the reward functions TRL's GRPOTrainer calls.

``grpo.rewards`` maps tasks (``by_task``, GeoVLM-R1's task-aware rewards) and answer types (``by_answer_type``,
the TinyRS-R1 recipe) to weighted reward names (keys of ``registry.REWARDS``). A sample that names a task
(the dataset's optional ``task`` column) present in ``by_task`` is scored with that task's mapping; any other
sample, with its answer type's. The format reward is added to every sample with ``format_weight``. A sample's
reward is

    format_weight * format + sum over its mapping of weight * reward.

``make_reward_functions`` returns ``[format_reward, accuracy_reward]`` for the trainer. Reward i is
computed from completion i and solution i only, whatever the batch size (the reference paired them
wrongly above batch size 1). Entries with weight 0 are not computed.

Start-up rule (``check_ready``), for the LLM judge: if any sample that will be scored has a mapping
that uses ``judge``, then the judge must be callable: either the environment variable named by
``grpo.judge.api_key_env`` is set, or ``grpo.judge.base_url`` points at a (keyless) server of one's own.
Otherwise training stops before it starts, naming the remedies: set the key, set a base_url, set
``grpo.skip_open_ended: true`` (open-ended samples, answer type "0", are then dropped from the dataset
by the trainer via ``keeps_sample``), or map type "0" to a reward without the judge. Before that, the
judge's ``base_url`` and ``api_key_env`` are checked (``judge.check_judge_endpoint``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from itertools import repeat
from typing import Any, Callable, Iterable, Sequence

from tinyrs.config import ConfigError
from tinyrs.grpo.rewards.boxes import truth_boxes
from tinyrs.grpo.rewards.inputs import Completion, Sample, read_completions, sample_from_solution
from tinyrs.grpo.rewards.judge import Judge, check_judge_endpoint, judge_unusable_reason
from tinyrs.grpo.rewards.registry import REWARDS, Scorer
from tinyrs.io import DataError
from tinyrs.settings import GrpoSettings

OPEN_ENDED = "0"
TASK_REWARD_PREFIX = "reward_tasks/"   # logged per task of the `task` column: tinyrs.grpo.curves reads it
RewardFunction = Callable[..., list[float]]


class RewardStats:
    """Running mean and standard deviation of every reward component since construction."""

    def __init__(self) -> None:
        self._moments: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])

    def add(self, name: str, values: Sequence[float]) -> None:
        moments = self._moments[name]
        moments[0] += len(values)
        moments[1] += sum(values)
        moments[2] += sum(v * v for v in values)

    def summary(self) -> dict[str, float]:
        """``{"<name>/mean": ..., "<name>/std": ..., "<name>/count": ...}`` per component seen."""
        out: dict[str, float] = {}
        for name, (count, total, squares) in sorted(self._moments.items()):
            mean = total / count if count else 0.0
            out[f"{name}/mean"] = mean
            out[f"{name}/std"] = math.sqrt(max(0.0, squares / count - mean * mean)) if count else 0.0
            out[f"{name}/count"] = count
        return out


def batch_summary(name: str, values: Sequence[float]) -> dict[str, float]:
    mean = sum(values) / len(values)
    std = math.sqrt(max(0.0, sum(v * v for v in values) / len(values) - mean * mean))
    return {f"reward_components/{name}/mean": mean, f"reward_components/{name}/std": std}


class RewardSuite:
    """The configured rewards of a GRPO stage's settings; scorers built on first use."""

    def __init__(self, grpo_settings: GrpoSettings):
        rewards = grpo_settings.rewards
        self.settings = grpo_settings
        self.chat = grpo_settings.chat
        self.format_weight = float(rewards.format_weight)
        self.by_answer_type = _weighted_mappings(rewards.by_answer_type, "grpo.rewards.by_answer_type")
        self.by_task = _weighted_mappings(rewards.by_task, "grpo.rewards.by_task")
        self.stats = RewardStats()
        self._scorers: dict[str, Scorer] = {}

    def scorer(self, name: str) -> Scorer:
        if name not in self._scorers:
            self._scorers[name] = REWARDS[name].build(self.settings)
        return self._scorers[name]

    def judge(self) -> Judge | None:
        """The judge, if it has been used (for its failure counters)."""
        judge = self._scorers.get("judge")
        return judge if isinstance(judge, Judge) else None

    def keeps(self, sample: Sample) -> bool:
        """False for open-ended samples when ``grpo.skip_open_ended`` is true: those are not scored at all."""
        return keeps_sample(self.settings, sample)

    def mapping_for(self, sample: Sample, where: str) -> dict[str, float]:
        """The weighted rewards for this sample's task, else for its answer type; its solution is checked against
        their needs."""
        if not self.keeps(sample):
            raise DataError(
                f"{where}: open-ended sample reached the rewards although grpo.skip_open_ended is true "
                f"(the trainer must drop such samples, see keeps_sample)"
            )
        if sample.task in self.by_task:
            mapping = self.by_task[sample.task]
        elif sample.answer_type in self.by_answer_type:
            mapping = self.by_answer_type[sample.answer_type]
        else:
            raise DataError(
                f"{where}: answer_type '{sample.answer_type}' has no rewards in grpo.rewards.by_answer_type "
                f"(configured: {sorted(self.by_answer_type)})"
            )
        check_truth(sample, mapping, where)
        return mapping

    def format_rewards(self, completions: Sequence[Completion]) -> list[float]:
        """``format_weight`` times the format reward, per completion."""
        values = [1.0 if c.well_formed else 0.0 for c in completions]
        self.stats.add("format", values)
        return [self.format_weight * v for v in values]

    def components(
        self, completions: Sequence[Completion], samples: Sequence[Sample], mappings: Sequence[dict[str, float]]
    ) -> list[dict[str, float]]:
        """The unweighted value of every reward in each sample's mapping; each reward is called once per batch."""
        values: list[dict[str, float]] = [{} for _ in samples]
        for name in dict.fromkeys(name for mapping in mappings for name in mapping):
            rows = [i for i, mapping in enumerate(mappings) if name in mapping]
            scores = self.scorer(name)([completions[i] for i in rows], [samples[i] for i in rows])
            _check_scores(name, scores, len(rows))
            for row, score in zip(rows, scores):
                values[row][name] = score
            self.stats.add(name, scores)
        return values

    def accuracy_rewards(
        self, completions: Sequence[Completion], samples: Sequence[Sample], mappings: Sequence[dict[str, float]]
    ) -> tuple[list[float], list[dict[str, float]]]:
        """Weighted sums per sample, with the components they came from."""
        components = self.components(completions, samples, mappings)
        totals = [sum(weight * parts[name] for name, weight in mapping.items())
                  for mapping, parts in zip(mappings, components)]
        return totals, components

    def score(
        self, completions: Sequence[Completion], samples: Sequence[Sample], mappings: Sequence[dict[str, float]]
    ) -> list[dict[str, float]]:
        """Every component, ``format`` included, and the ``total`` per sample (offline scoring)."""
        formats = self.format_rewards(completions)
        totals, components = self.accuracy_rewards(completions, samples, mappings)
        return [
            {"format": 1.0 if c.well_formed else 0.0, **parts, "total": fmt + total}
            for c, parts, fmt, total in zip(completions, components, formats, totals)
        ]

    def summary(self) -> dict[str, float]:
        """Per-component mean/std/count since start, plus the judge's counters once it has been used."""
        judge = self.judge()
        return {**self.stats.summary(), **(judge.stats() if judge else {})}


def _weighted_mappings(mappings: dict, where: str) -> dict[str, dict[str, float]]:
    """``{key: {reward: weight}}`` without the weight-0 entries; unknown reward names and a key whose weights are
    all 0 (it would route its samples to no reward at all) are ConfigErrors naming ``where.<key>``."""
    out = {}
    for key, mapping in mappings.items():
        check_reward_names(mapping, f"{where}.{key}")
        out[key] = {name: float(weight) for name, weight in mapping.items() if weight > 0}
        if not out[key]:
            raise ConfigError(f"{where}.{key}: every weight is 0, so its samples would get no reward; give one "
                              f"reward a positive weight or remove the entry")
    return out


def check_reward_names(mapping: dict, where: str) -> None:
    usable = sorted(set(REWARDS) - {"format"})
    unknown = sorted(set(mapping) - set(usable))
    if unknown:
        raise ConfigError(f"{where}: unknown reward(s) {unknown}; use {usable} (format has its own format_weight)")


def check_truth(sample: Sample, mapping: dict[str, float], where: str) -> None:
    """A box reward needs boxes in the solution's answer: say which sample lacks them."""
    if any(REWARDS[name].needs_truth_boxes for name in mapping):
        try:
            truth_boxes(sample.answer)
        except DataError as err:
            raise DataError(f"{where}: field 'answer': {err}") from None


def _check_scores(name: str, scores: Sequence[float], expected: int) -> None:
    """A reward outside its declared range is a bug in the reward: stop rather than train on it."""
    spec = REWARDS[name]
    if len(scores) != expected:
        raise RuntimeError(f"reward '{name}' returned {len(scores)} values for {expected} samples")
    bad = [s for s in scores if not (math.isfinite(s) and spec.low <= s <= spec.high)]
    if bad:
        raise RuntimeError(f"reward '{name}' returned {bad[:3]} outside its range [{spec.low}, {spec.high}]")


def keeps_sample(grpo_settings: GrpoSettings, solution: Sequence[Any]) -> bool:
    """Whether the trainer keeps a dataset row: False for open-ended rows when ``skip_open_ended`` is true.

    ``solution`` is the row's ``[answer_type, answer, question, image]`` (a ``Sample`` works too).
    """
    return not (grpo_settings.skip_open_ended and str(solution[0]) == OPEN_ENDED)


def check_ready(
    grpo_settings: GrpoSettings, solutions: Iterable[Sequence[Any]], tasks: Iterable[Any] | None = None
) -> dict[str, int]:
    """Check the reward configuration against the dataset before training; return sample counts per route.

    ``tasks``: the dataset's ``task`` column, aligned with ``solutions`` (None: no such column). Counts are
    keyed by answer type for samples routed by it, ``task:<name>`` for samples routed by ``by_task``, and
    ``unmapped_task:<name>`` (also counted under their answer type) for samples naming a task that ``by_task``
    lacks, which fall back to their answer type: a typo in a task name shows there.
    Raises ConfigError for unknown reward names or an unusable judge (rule in the module docstring),
    DataError naming the row for a malformed solution, an unmapped answer type, or a box task whose
    answer holds no box. Rows dropped by ``skip_open_ended`` are counted as ``skipped_open_ended``.
    """
    suite = RewardSuite(grpo_settings)
    counts: dict[str, int] = defaultdict(int)
    needs_judge = False
    rows = zip(solutions, repeat(None)) if tasks is None else zip(solutions, tasks, strict=True)
    for index, (solution, task) in enumerate(rows):
        where = f"solution[{index}]"
        sample = sample_from_solution(solution, where, task)
        if not suite.keeps(sample):
            counts["skipped_open_ended"] += 1
            continue
        needs_judge |= "judge" in suite.mapping_for(sample, where)
        if sample.task in suite.by_task:
            counts[f"task:{sample.task}"] += 1
            continue
        if sample.task is not None:
            counts[f"unmapped_task:{sample.task}"] += 1
        counts[sample.answer_type] += 1
    if needs_judge:
        require_usable_judge(grpo_settings)
    return dict(counts)


def require_usable_judge(grpo_settings: GrpoSettings) -> None:
    """Raise ConfigError, with the remedies, when samples need the judge but it cannot be called."""
    check_judge_endpoint(grpo_settings.judge)
    reason = judge_unusable_reason(grpo_settings.judge)
    if reason:
        raise ConfigError(
            f"samples mapped to the LLM judge are to be scored, but {reason}. Set the key, point "
            f"grpo.judge.base_url at a keyless OpenAI-compatible server, set grpo.skip_open_ended: true, "
            f"or map answer type '0' to a reward without the judge (e.g. sbert)"
        )


def make_reward_functions(grpo_settings: GrpoSettings) -> list[RewardFunction]:
    """``[format_reward, accuracy_reward]`` as TRL's GRPOTrainer calls them.

    TRL calls ``f(prompts=..., completions=..., completion_ids=..., **dataset_columns, log_metric=...)``
    with every list aligned to ``completions``; ``solution`` and the optional ``task`` are dataset columns.
    Each returns ``list[float]``, one per completion. When TRL passes ``log_metric``, the batch's mean/std per
    component (``reward_components/<name>/mean``), the mean task reward per ``task`` of the batch
    (``reward_tasks/<task>/mean``: GeoVLM-R1's R_task) and the judge's counters are logged through it.
    Both functions share one ``RewardSuite``, reachable as ``function.suite`` (``suite.summary()``).
    """
    suite = RewardSuite(grpo_settings)

    def format_reward(completions: Sequence[Any], **_: Any) -> list[float]:
        return suite.format_rewards(read_completions(completions, suite.chat))

    def accuracy_reward(
        completions: Sequence[Any], solution: Sequence[Any], task: Sequence[Any] | None = None,
        log_metric: Callable | None = None, **_: Any
    ) -> list[float]:
        tasks = [None] * len(solution) if task is None else task
        if not len(solution) == len(tasks) == len(completions):
            raise DataError(f"got {len(completions)} completions but {len(solution)} solutions and {len(tasks)} tasks")
        parsed = read_completions(completions, suite.chat)
        samples = [sample_from_solution(s, f"solution[{i}]", t) for i, (s, t) in enumerate(zip(solution, tasks))]
        mappings = [suite.mapping_for(sample, f"solution[{i}]") for i, sample in enumerate(samples)]
        totals, components = suite.accuracy_rewards(parsed, samples, mappings)
        if log_metric is not None:
            for name in dict.fromkeys(name for parts in components for name in parts):
                for key, value in batch_summary(name, [p[name] for p in components if name in p]).items():
                    log_metric(key, value)
            for name in dict.fromkeys(t for t in tasks if t is not None):
                values = [total for total, t in zip(totals, tasks) if t == name]
                log_metric(f"{TASK_REWARD_PREFIX}{name}/mean", sum(values) / len(values))
            judge = suite.judge()
            for key, value in (judge.stats() if judge else {}).items():
                log_metric(key, value)
        return totals

    for function in (format_reward, accuracy_reward):
        function.suite = suite
    return [format_reward, accuracy_reward]
