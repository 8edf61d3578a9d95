"""The evaluation tasks, built from ``config.eval.tasks``: adding a benchmark is a config edit, not a code edit."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyrs.answers import LHRS_TYPES  # LHRS-Bench type ids -> names: one table, shared with the demo world
from tinyrs.config import ConfigError
from tinyrs.eval.metrics import METRICS

__all__ = ["BOX_UNITS", "LHRS_TYPES", "Task", "select_tasks", "task_from_entry", "task_registry"]

BOX_UNITS = ("normalized", "pixels")


@dataclass(frozen=True)
class Task:
    """One benchmark: its data file under DATA_ROOT, how it is scored, and where the report groups it.

    ``prefix`` is the VHM task prefix (``{CLS}``...) put before the question by the prompt styles that use one.
    ``answer_boxes`` (grounding) says whether ground-truth boxes are pixels of the original image or,
    like the model's answers, the 0-1000 grid.
    """

    key: str
    file: str
    metric: str
    family: str
    prefix: str | None = None
    answer_boxes: str = "normalized"

    def as_dict(self) -> dict:
        return asdict(self)


def task_from_entry(key: str, entry: dict) -> Task:
    try:
        task = Task(key=key, **entry)
    except TypeError as err:
        raise ConfigError(f"eval.tasks.{key}: {err}") from err
    if task.metric not in METRICS:
        raise ConfigError(f"eval.tasks.{key}.metric: '{task.metric}' is not one of {list(METRICS)}")
    if task.answer_boxes not in BOX_UNITS:
        raise ConfigError(f"eval.tasks.{key}.answer_boxes: '{task.answer_boxes}' is not one of {list(BOX_UNITS)}")
    return task


def task_registry(task_table: dict) -> dict[str, Task]:
    """``config.eval.tasks`` (also found in a stage's eval settings under ``tasks``) as Task objects."""
    return {key: task_from_entry(key, entry) for key, entry in task_table.items()}


def select_tasks(registry: dict[str, Task], keys: list[str] | None) -> list[Task]:
    """The tasks named in ``keys`` (all when None), in the order given; an unknown key is an error."""
    if not keys:
        return list(registry.values())
    unknown = [key for key in keys if key not in registry]
    if unknown:
        raise ConfigError(f"unknown eval task(s) {unknown}; configured tasks: {sorted(registry)}")
    return [registry[key] for key in keys]
