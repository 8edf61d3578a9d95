"""Reading a task's evaluation file into samples; every unusable record becomes a counted, reported skip.

Layout (REFERENCE.md §2): ``DATA_ROOT/<file>`` is a JSON array of records with ``image``, ``conversations``
([0] question, [1] answer), optional ``size`` = [width, height] of the original image, optional ``type``
(LHRS-Bench type ids) and optional ``image_path``: the *folder* holding ``image``, absolute or relative to
DATA_ROOT (as in the reference evaluator). Without it the image is ``DATA_ROOT/<file stem>/<image>``.
``image`` may be a list of file names (a bi-temporal pair: before, after): the model gets them in that order, and
a record without ``size`` is scored at its first image's size.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from tinyrs.eval.metrics import METRICS
from tinyrs.eval.scoring import ground_truth_problem
from tinyrs.eval.tasks import Task
from tinyrs.io import DataError


@dataclass(frozen=True)
class Sample:
    index: int            # position in the task's file: the key for resuming, sharding and skips
    image_paths: tuple[Path, ...]  # in the record's order
    filename: str | list  # the image path(s) as reported (relative to DATA_ROOT when inside it): a list when several
    question: str
    answer: str
    size: list | None     # [width, height]; filled from the decoded image when the record has none
    types: list | None


@dataclass(frozen=True)
class Skip:
    index: int
    reason: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


class _Unusable(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _image_locations(record: dict, data_root: Path, file_stem: str) -> tuple[Path, ...]:
    image = record.get("image")
    names = image if isinstance(image, list) and image else [image]
    if not all(isinstance(name, str) and name.strip() for name in names):
        raise _Unusable("bad_image_field", f"'image' must be a file name or a list of them, got {image!r}")
    folder = record.get("image_path")
    if folder is None:
        return tuple(data_root / file_stem / name for name in names)
    if not isinstance(folder, str) or not folder.strip():
        raise _Unusable("bad_image_field", f"'image_path' must be a folder path, got {folder!r}")
    return tuple((Path(folder) if Path(folder).is_absolute() else data_root / folder) / name for name in names)


def _reported(path: Path, data_root: Path) -> str:
    try:
        return path.relative_to(data_root).as_posix()
    except ValueError:
        return str(path)


def _turns(record: dict) -> tuple[str, str]:
    turns = record.get("conversations")
    if (not isinstance(turns, list) or len(turns) < 2
            or not all(isinstance(turn, dict) and isinstance(turn.get("value"), str) for turn in turns[:2])):
        raise _Unusable("bad_conversations", "'conversations' must hold a question and an answer turn with 'value' text")
    return turns[0]["value"], turns[1]["value"]


def _sample(task: Task, record, index: int, data_root: Path, file_stem: str) -> Sample:
    if not isinstance(record, dict):
        raise _Unusable("not_an_object", f"record is a {type(record).__name__}, not an object")
    image_paths = _image_locations(record, data_root, file_stem)
    question, answer = _turns(record)
    size, types = record.get("size"), record.get("type")
    problem = ground_truth_problem(task, answer, size, types)
    if problem:
        raise _Unusable(*problem)
    filenames = [_reported(path, data_root) for path in image_paths]
    filename = filenames if isinstance(record["image"], list) else filenames[0]
    return Sample(index, image_paths, filename, question, answer,
                  list(size) if size is not None else None,
                  types if METRICS[task.metric].reads_types else None)


def load_samples(task: Task, data_root: str | Path, max_samples: int | None = None) -> tuple[list[Sample], list[Skip]]:
    """The task's usable samples (the first ``max_samples`` records when set) and the skipped ones."""
    data_root = Path(data_root)
    path = data_root / task.file
    if not path.is_file():
        raise DataError(f"{path}: evaluation file of task '{task.key}' not found")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON array of records, got {type(records).__name__}")
    if max_samples is not None:
        records = records[:max_samples]
    samples, skips = [], []
    for index, record in enumerate(records):
        try:
            samples.append(_sample(task, record, index, data_root, path.stem))
        except _Unusable as unusable:
            skips.append(Skip(index, unusable.reason, unusable.detail))
    return samples, skips
