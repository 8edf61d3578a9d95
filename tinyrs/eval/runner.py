"""The generation loop: per-sample predictions appended as produced, resumable, then the task's metrics.

For each task, ``OUT/<stem>.jsonl`` gets one line per scored sample as soon as its batch is generated
(``stem`` = the task key, or ``<task>.shard-<i>-of-<n>`` for one of n shards). A killed job resumes after
the last complete line. ``OUT/<stem>.run.json`` fingerprints what produced the lines (task, settings except
the batch size, model manifest, data file, shard): when it differs, the task starts over instead of
mixing predictions. When every sample is done, ``OUT/<stem>.metrics.json`` is written atomically; it is the
Snakemake target. Shards are combined by ``merge_shards`` into ``<task>.jsonl`` + ``<task>.metrics.json``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tinyrs.eval.backends.base import Backend, make_backend
from tinyrs.eval.metrics import METRICS
from tinyrs.eval.prompts import build_messages, question_text
from tinyrs.eval.records import Sample, Skip, load_samples
from tinyrs.eval.scoring import aggregate, ground_truth_problem, score_row
from tinyrs.eval.tasks import Task, select_tasks, task_from_entry, task_registry
from tinyrs.io import (
    MANIFEST_NAME,
    DataError,
    append_jsonl,
    atomic_open,
    model_dir_of,
    read_json,
    read_jsonl,
    scan_jsonl,
    sha256_file,
    sha256_json,
    write_json,
)
from tinyrs.paths import metrics_name, shard_stem
from tinyrs.settings import ChatSettings, EvalSettings

# Settings that may change between a killed run and its resumption without invalidating finished lines.
RESUMABLE_SETTINGS = ("batch_size", "tasks", "shards")
PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class Shard:
    """Samples whose index ``% count == index``: the part of a task one job evaluates."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> "Shard":
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard '{text}': expected i/n, e.g. 0/4") from None
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"--shard '{text}': need 0 <= i < n")
        return cls(index, count)

    def holds(self, sample_index: int) -> bool:
        return sample_index % self.count == self.index

    def stem(self, task_key: str) -> str:
        return task_key if self.count == 1 else shard_stem(task_key, self.index, self.count)

    def label(self) -> str | None:
        return None if self.count == 1 else f"{self.index}/{self.count}"


def predictions_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}.jsonl"


def metrics_path(out_dir: Path, stem: str) -> Path:
    return out_dir / metrics_name(stem)


def _run_path(out_dir: Path, stem: str) -> Path:
    return out_dir / f"{stem}.run.json"


def model_manifest_sha256(model_dir: str | Path) -> str | None:
    manifest = model_dir_of(model_dir) / MANIFEST_NAME
    return sha256_file(manifest) if manifest.exists() else None


def open_image(path: Path):
    """The image as RGB, or a ``(reason, detail)`` skip. Remote-sensing scenes are legitimately huge: no pixel cap."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        return "image_missing", f"{path} does not exist"
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) for bad files
        return "image_unreadable", f"{path}: {type(err).__name__}: {err}"


def resume_rows(pred_path: Path, run_path: Path, fingerprint: str) -> list[dict]:
    """Finished rows of an earlier run with the same fingerprint; the file is left holding exactly those.

    Only here may a torn last line (the writer was killed mid-line) be dropped; any other bad line is an error.
    """
    if pred_path.exists():
        earlier = read_json(run_path).get("fingerprint") if run_path.exists() else None
        if earlier == fingerprint:
            contents = scan_jsonl(pred_path, drop_torn_tail=True)
            if contents.ends_unterminated:  # rewrite, so that the next appended row starts on its own line
                with atomic_open(pred_path, "w", encoding="utf-8") as handle:
                    for row in contents.records:
                        append_jsonl(handle, row)
            return contents.records
        print(f"tinyrs eval: {pred_path} was produced by other settings, model or data: starting over", flush=True)
        pred_path.unlink()
    write_json(run_path, {"fingerprint": fingerprint})
    return []


def _checked_indices(rows: list[dict], source: Path) -> set[int]:
    seen: set[int] = set()
    for line, row in enumerate(rows, start=1):
        index = row.get("index")
        if not isinstance(index, int) or index in seen:
            raise DataError(f"{source}: row {line}: field 'index' is missing or repeated ({index!r})")
        seen.add(index)
    return seen


def _row(task: Task, sample: Sample, size: list, query: str, completion: str, chat: ChatSettings) -> dict:
    row = {"index": sample.index, "filename": sample.filename, "size": size, "query": query,
           "answer": sample.answer, "pred": completion}
    if sample.types is not None:
        row["type"] = sample.types
    row.update(score_row(task, row, chat))
    return row


def _metrics_document(task: Task, rows: list[dict], skips: list[Skip], meta: dict) -> dict:
    skips = sorted(skips, key=lambda skip: skip.index)
    by_reason: dict[str, int] = {}
    for skip in skips:
        by_reason[skip.reason] = by_reason.get(skip.reason, 0) + 1
    return {
        "task": task.key, "family": task.family, "metric": task.metric, "task_config": task.as_dict(), **meta,
        **aggregate(task, rows),
        "skipped": by_reason, "skipped_total": len(skips), "skipped_records": [skip.as_dict() for skip in skips],
    }


def shard_samples(task: Task, settings: EvalSettings, data_root: Path, shard: Shard) -> tuple[list[Sample], list[Skip]]:
    """The task's usable samples and its skips, of this shard."""
    samples, skips = load_samples(task, data_root, settings.max_samples)
    return ([sample for sample in samples if shard.holds(sample.index)],
            [skip for skip in skips if shard.holds(skip.index)])


def run_task(task: Task, settings: EvalSettings, model_dir: str | Path, data_root: Path, out_dir: Path, shard: Shard,
             loaded: tuple[list[Sample], list[Skip]], get_backend: Callable[[], Backend]) -> dict:
    """Evaluate one task (one shard of it, ``loaded`` by ``shard_samples``); returns the metrics written to its
    metrics file."""
    manifest_sha = model_manifest_sha256(model_dir)
    samples, skips = loaded
    stem = shard.stem(task.key)
    pred_path, run_path = predictions_path(out_dir, stem), _run_path(out_dir, stem)
    fingerprint = sha256_json({
        "task": task.as_dict(), "model": manifest_sha or f"path:{model_dir_of(model_dir).resolve()}",
        "data": sha256_file(data_root / task.file),
        "shard": [shard.index, shard.count],
        "settings": {k: v for k, v in settings.to_dict().items() if k not in RESUMABLE_SETTINGS},
    })
    done = _checked_indices(resume_rows(pred_path, run_path, fingerprint), pred_path)
    pending = [sample for sample in samples if sample.index not in done]
    print(f"tinyrs eval {stem}: {len(samples)} samples, {len(done)} already done, "
          f"{len(skips)} skipped as unusable", flush=True)
    batch_size, last_report = settings.batch_size, time.monotonic()
    with open(pred_path, "a", encoding="utf-8") as handle:
        for start in range(0, len(pending), batch_size):
            batch, inputs = [], []
            for sample in pending[start:start + batch_size]:
                images = [open_image(path) for path in sample.image_paths]
                problem = next((image for image in images if isinstance(image, tuple)), None)
                if problem:
                    skips.append(Skip(sample.index, *problem))
                    print(f"tinyrs eval {stem}: skipped sample {sample.index}: {problem[0]}: {problem[1]}", flush=True)
                    continue
                query = question_text(sample.question, task, settings)
                batch.append((sample, sample.size or [images[0].width, images[0].height], query))
                inputs.append((build_messages(query, settings, len(images)), images))
            if not batch:
                continue
            completions = get_backend().generate(inputs)
            if len(completions) != len(batch):
                raise RuntimeError(f"backend returned {len(completions)} completions for {len(batch)} prompts")
            for (sample, size, query), completion in zip(batch, completions):
                append_jsonl(handle, _row(task, sample, size, query, completion, settings.chat))
            if time.monotonic() - last_report > PROGRESS_EVERY_S:
                print(f"tinyrs eval {stem}: {min(start + batch_size, len(pending))}/{len(pending)} new samples",
                      flush=True)
                last_report = time.monotonic()
    # rescored: rows resumed from an earlier run carry the verdicts of the scoring code that wrote them
    rows = [{**row, **score_row(task, row, settings.chat)}
            for row in sorted(read_jsonl(pred_path), key=lambda row: row["index"])]
    meta = {"stage": settings.stage, "prompt_style": settings.prompt_style,
            "backend": settings.backend, "model_manifest_sha256": manifest_sha,
            "data_file": task.file, "shard": shard.label(), "predictions": pred_path.name}
    document = _metrics_document(task, rows, skips, meta)
    write_json(metrics_path(out_dir, stem), document)
    print(f"tinyrs eval {stem}: {document['primary']} = {_percent(document)} over {document['n']} samples", flush=True)
    return document


def _percent(document: dict) -> str:
    value = document["metrics"][document["primary"]]["value"]
    return "n/a" if value is None else f"{100 * value:.2f}%"


def run_eval(settings: EvalSettings, model_dir: str | Path, data_root: str | Path, out_dir: str | Path,
             task_keys: list[str] | None = None, shard: Shard = Shard(), backend: Backend | None = None) -> dict[str, dict]:
    """Evaluate the selected tasks; the backend (the model) is loaded only when some sample still needs it."""
    tasks = select_tasks(task_registry(settings.tasks), task_keys)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = {task.key: shard_samples(task, settings, Path(data_root), shard) for task in tasks}
    most_images = max((len(sample.image_paths) for task_samples, _ in samples.values() for sample in task_samples),
                      default=1)
    started: list[Backend] = [backend] if backend is not None else []

    def get_backend() -> Backend:
        if not started:
            started.append(make_backend(settings, model_dir, most_images))
        return started[0]

    return {task.key: run_task(task, settings, model_dir, Path(data_root), out_dir, shard, samples[task.key],
                               get_backend)
            for task in tasks}


def merge_shards(task_key: str, out_dir: str | Path, shards: int) -> dict:
    """Combine ``shards`` finished shards of a task into ``<task>.jsonl`` and ``<task>.metrics.json``."""
    out_dir = Path(out_dir)
    parts = [Shard(index, shards) for index in range(shards)]
    missing = [part.label() for part in parts if not metrics_path(out_dir, part.stem(task_key)).exists()]
    if missing:
        raise DataError(f"{out_dir}: task '{task_key}' shards {missing} have no metrics file (not finished)")
    documents = [read_json(metrics_path(out_dir, part.stem(task_key))) for part in parts]
    identity_keys = ("task_config", "stage", "prompt_style", "backend", "model_manifest_sha256")
    for part, document in zip(parts[1:], documents[1:]):
        differing = [key for key in identity_keys if document.get(key) != documents[0].get(key)]
        if differing:
            raise DataError(f"{out_dir}: shard {part.label()} of '{task_key}' differs from shard 0/{shards} in {differing}")
    rows, skips = [], []
    for part, document in zip(parts, documents):
        rows.extend(read_jsonl(predictions_path(out_dir, part.stem(task_key))))
        skips.extend(Skip(**skip) for skip in document["skipped_records"])
    pred_path = predictions_path(out_dir, task_key)
    _checked_indices(rows, pred_path)
    rows.sort(key=lambda row: row["index"])
    with atomic_open(pred_path, "w", encoding="utf-8") as handle:
        for row in rows:
            append_jsonl(handle, row)
    task = task_from_entry(task_key, {k: v for k, v in documents[0]["task_config"].items() if k != "key"})
    meta = {key: documents[0].get(key) for key in identity_keys[1:]}
    meta.update({"data_file": task.file, "shard": None, "shards": shards, "predictions": pred_path.name})
    document = _metrics_document(task, rows, skips, meta)
    write_json(metrics_path(out_dir, task_key), document)
    return document


def score_predictions(task: Task, rows: list[dict], chat: ChatSettings, meta: dict | None = None) -> dict:
    """Re-score saved prediction rows without a model; rows that cannot be scored are counted skips."""
    scored, skips = [], []
    for position, row in enumerate(rows):
        index = row.get("index", position)
        if "pred" not in row or not isinstance(row["pred"], (str, type(None))) or "answer" not in row:
            skips.append(Skip(index, "bad_prediction_row", "row needs 'pred' (text) and 'answer'"))
            continue
        problem = ground_truth_problem(task, row["answer"], row.get("size"), row.get("type"))
        if problem is None and METRICS[task.metric].needs_size and row.get("size") is None:
            problem = ("missing_size", f"{task.metric} rows need 'size' = [width, height]")
        if problem:
            skips.append(Skip(index, *problem))
            continue
        scored.append({**row, **score_row(task, row, chat)})
    return _metrics_document(task, scored, skips, meta or {})
