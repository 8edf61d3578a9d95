"""``tinyrs data correct``: stream a raw VHM list, fix what is fixable, reject the rest with a reason.

Fixes: a bare image name gets its sub-folder (``source_dataset``, matched against the folders that exist
under the image root case-insensitively and with the ``corwdAI``/``crowdAI`` swap); a record with images
but no ``<image>`` tag gets the tags prepended to its first human turn (the VHM convention).
Rejections (``records.REASONS``) go to ``rejects.jsonl``; nothing is dropped silently.

Outputs in ``out_dir``: ``corrected.json`` (VHM JSON array, one record per line, image paths relative to
the image root), ``corrected.arrow`` (per record: its source, its images and where its JSON text lies in
corrected.json, so that ``tinyrs data oversample`` never parses JSON in Python), ``rejects.jsonl``, and
``report.json``, written last: its presence means the other three are complete.

A list whose data went bad fails instead (``check_outcome``): one with no records (unless empty lists are
allowed), or with more than ``max_rejected_fraction`` of its records rejected for a defect (a wrong image
root rejects them all). Duplicates are not defects: the published lists are oversampled. A failed run
leaves only ``rejects.jsonl``, to say why.

Speed: the per-record work is Python (25-30 us a record on a slow core), so a list larger than one
segment is cut into byte ranges read by worker processes (``stream.ArrayReader``); the main process
checks that the ranges join up, drops duplicates across them and writes the outputs in record order.
"""
from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tinyrs.chat import IMAGE_PLACEHOLDER
from tinyrs.data.images import ImageTree, decode_problem
from tinyrs.data.manifest import IMAGES_TYPE
from tinyrs.data.records import (
    MAX_REJECTED_FRACTION, NOT_DEFECTS, REASONS, Problem, image_list, image_tag_problem, structure_problem,
)
from tinyrs.data.stream import ArrayError, ArrayReader, element_start
from tinyrs.io import DataError, atomic_open, write_json
from tinyrs.paths import CORRECTED_REPORT as REPORT

CHECKS = ("none", "exists", "decode")
FIXES = ("image_tag_added", "image_folder_added", "image_folder_respelled", "image_path_normalized")
KEPT_FIELDS = frozenset({"id", "source_dataset", "image", "conversations"})
NO_SOURCE = "(none)"  # source of a record with neither source_dataset nor a sub-folder in its image path
SEGMENT_BYTES = 16 << 20  # byte range handed to one worker

CORRECTED_JSON = "corrected.json"
CORRECTED_ARROW = "corrected.arrow"
REJECTS = "rejects.jsonl"
ROWS_SCHEMA = pa.schema([("source", pa.string()), ("images", IMAGES_TYPE), ("json", pa.string())])
# corrected.arrow: a record's JSON text is corrected.json[offset:offset + length]
RECORDS_SCHEMA = pa.schema(
    [("source", pa.string()), ("images", IMAGES_TYPE), ("offset", pa.int64()), ("length", pa.int64())]
)


def _compact_encoder():
    """JSON text of a value, compact, non-ASCII kept. The C encoder is built once: ``JSONEncoder.encode``
    rebuilds it on every call, which costs as much as encoding a small record."""
    from json.encoder import c_make_encoder, encode_basestring

    if c_make_encoder is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def refuse(value: Any) -> Any:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    encoder = c_make_encoder(None, refuse, encode_basestring, None, ":", ",", False, False, True)

    def encode(value: Any) -> str:
        return encode_basestring(value) if type(value) is str else "".join(encoder(value, 0))

    return encode


_encode = _compact_encoder()


class Kept(NamedTuple):
    """A record that passed every per-record check, in its output form."""

    source: str
    images: list[str]
    json: str
    key: bytes  # digest of images + conversations, for duplicate detection
    fixes: tuple[str, ...]
    dropped: list[str]


def correct_record(record: Any, tree: ImageTree) -> Kept | Problem:
    """Check and fix one raw record (everything except image decoding and duplicates)."""
    problem = structure_problem(record)
    if problem:
        return problem
    turns = record["conversations"]
    raw_images = image_list(record)
    fixes: tuple[str, ...] = ()
    dropped = [] if record.keys() <= KEPT_FIELDS else sorted(record.keys() - KEPT_FIELDS)
    if sum(map(len, turns)) != 2 * len(turns):  # turns with keys besides from/value
        dropped += sorted({f"conversations.{key}" for turn in turns for key in turn if key not in ("from", "value")})
        turns = [{"from": turn["from"], "value": turn["value"]} for turn in turns]
    problem = image_tag_problem(turns, len(raw_images))
    if problem and raw_images and not any(IMAGE_PLACEHOLDER in turn["value"] for turn in turns):
        tags = (IMAGE_PLACEHOLDER + "\n") * len(raw_images)
        turns = [{"from": "human", "value": tags + turns[0]["value"]}, *turns[1:]]
        fixes = ("image_tag_added",)
        problem = None
    if problem:
        return problem
    source_dataset = record.get("source_dataset")
    images = []
    for raw in raw_images:
        resolved = tree.resolve(raw, source_dataset)
        if isinstance(resolved, Problem):
            return resolved
        images.append(resolved[0])
        fixes += resolved[1]
    if len(images) == 1:
        body = _encode({"image": images[0], "conversations": turns})
    else:
        body = _encode({"image": images, "conversations": turns} if images else {"conversations": turns})
    head = ""
    if "id" in record:
        head = '{"id":' + _encode(record["id"]) + ","
    if source_dataset is not None:
        head = (head or "{") + '"source_dataset":' + _encode(source_dataset) + ","
    line = head + body[1:] if head else body
    source = source_dataset or (images[0].split("/", 1)[0] if images and "/" in images[0] else NO_SOURCE)
    key = hashlib.blake2b(body.encode(), digest_size=16).digest()
    return Kept(source, images, line, key, fixes, dropped)


def raw_source(record: Any) -> str:
    """Best-effort source of a raw (possibly rejected) record, for per-source counts."""
    if isinstance(record, dict):
        source = record.get("source_dataset")
        if isinstance(source, str) and source:
            return source
        image = record.get("image")
        first = image[0] if isinstance(image, list) and image else image
        if isinstance(first, str) and "/" in first.strip("/"):
            return first.strip("/").split("/", 1)[0]
    return NO_SOURCE


@dataclass
class Segment:
    """What reading one byte range gives: kept rows (in order) and rejects, with local record indices."""

    start: int
    stop: int | None
    first_offset: int | None = None  # byte offset of the first record read
    next_offset: int | None = None  # byte offset of the record after the last one read; None: the array ended
    count: int = 0
    error: ArrayError | None = None
    rows: pa.RecordBatch | None = None  # ROWS_SCHEMA
    row_indices: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)
    fixes: list[tuple[str, ...]] = field(default_factory=list)
    dropped: list[list[str]] = field(default_factory=list)
    rejects: list[tuple[int, str, str, str]] = field(default_factory=list)  # index, reason, detail, source


def correct_segment(
    path: str, start: int, stop: int | None, sync: str | None, tree: ImageTree, check: str
) -> Segment:
    """Correct the records that start in bytes ``[start, stop)`` of the list.

    ``sync``: ``start`` is a guess; the first record is the next one that begins with this text.
    """
    segment = Segment(start, stop)
    reader = ArrayReader(path, start, sync=sync)
    kept: list[Kept] = []
    decoded: dict[str, str | None] = {}
    with _cyclic_gc_paused():
        try:
            for local, (_, record) in enumerate(reader.elements(stop)):
                segment.count = local + 1
                outcome = correct_record(record, tree)
                if isinstance(outcome, Kept) and check == "decode":
                    outcome = _decoded(outcome, tree, decoded)
                if isinstance(outcome, Problem):
                    where = f"{outcome.field}: " if outcome.field else ""
                    segment.rejects.append((local, outcome.reason, where + outcome.detail, raw_source(record)))
                else:
                    kept.append(outcome)
                    segment.row_indices.append(local)
        except ArrayError as err:
            segment.error = err
    segment.first_offset, segment.next_offset = reader.first_offset, reader.next_offset
    segment.keys = [row.key for row in kept]
    segment.fixes = [row.fixes for row in kept]
    segment.dropped = [row.dropped for row in kept]
    columns = [
        pa.array([row.source for row in kept], pa.string()),
        pa.array([row.images for row in kept], IMAGES_TYPE),
        pa.array([row.json for row in kept], pa.string()),
    ]
    segment.rows = pa.record_batch(columns, schema=ROWS_SCHEMA)
    return segment


def _decoded(kept: Kept, tree: ImageTree, decoded: dict[str, str | None]) -> Kept | Problem:
    for image in kept.images:
        if image not in decoded:
            decoded[image] = decode_problem(str(tree.root / image))
        if decoded[image]:
            return Problem("corrupt_image", "image", f"{image}: {decoded[image]}")
    return kept


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Parsed JSON holds no reference cycles: the cyclic collector would only rescan live records,
    which costs about 15% of the run."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Report:
    def __init__(self, list_path: Path, tree: ImageTree, check: str):
        self.list = str(list_path)
        self.image_root = str(tree.root)
        self.check = check
        self.read = 0
        self.kept = 0
        self.rejected = dict.fromkeys(REASONS, 0)
        self.fixes = dict.fromkeys(FIXES, 0)
        self.dropped_fields: Counter[str] = Counter()
        self.read_by_source: Counter[str] = Counter()
        self.kept_by_source: Counter[str] = Counter()

    def as_dict(self) -> dict:
        sources = sorted(self.read_by_source)
        return {
            "list": self.list,
            "image_root": self.image_root,
            "check": self.check,
            "read": self.read,
            "kept": self.kept,
            "rejected_total": sum(self.rejected.values()),
            "rejected": self.rejected,
            "fixes": self.fixes,
            "dropped_fields": dict(sorted(self.dropped_fields.items())),
            "per_source": {s: {"read": self.read_by_source[s], "kept": self.kept_by_source[s]} for s in sources},
            "outputs": {"list": CORRECTED_JSON, "records": CORRECTED_ARROW, "rejects": REJECTS},
        }


class _Writer:
    """Takes segments in file order: drops duplicates, counts, writes the three outputs."""

    def __init__(self, stack: contextlib.ExitStack, out_dir: Path, report: _Report):
        self.json = stack.enter_context(atomic_open(out_dir / CORRECTED_JSON, "wb"))
        self.rejects = stack.enter_context(atomic_open(out_dir / REJECTS, "w", encoding="utf-8"))
        arrow_handle = stack.enter_context(atomic_open(out_dir / CORRECTED_ARROW, "wb"))
        self.arrow = stack.enter_context(pa.ipc.new_file(arrow_handle, RECORDS_SCHEMA))
        self.report = report
        self.first_index_of: dict[bytes, int] = {}
        self.json.write(b"[")
        self.position = 1  # bytes written to corrected.json
        self.written = 0

    def add(self, segment: Segment) -> None:
        base = self.report.read
        if segment.error is not None:
            raise segment.error.counted_from(base)
        rejects = [(base + local, reason, detail, source) for local, reason, detail, source in segment.rejects]
        keep = np.ones(len(segment.keys), dtype=bool)
        for row, (local, key) in enumerate(zip(segment.row_indices, segment.keys)):
            index = base + local
            first = self.first_index_of.setdefault(key, index)
            if first != index:
                keep[row] = False
                source = segment.rows.column(0)[row].as_py()
                rejects.append((index, "duplicate", f"same images and conversations as record {first}", source))
        rows = segment.rows if keep.all() else segment.rows.filter(pa.array(keep))
        self._count(segment, keep, rows, rejects)
        for index, reason, detail, _ in sorted(rejects):
            line = {"index": index, "reason": reason, "detail": detail}
            self.rejects.write(json.dumps(line, ensure_ascii=False) + "\n")
        if rows.num_rows:
            separator = b"\n" if not self.written else b",\n"
            texts = joined_texts(rows.column(2), ",\n")
            self.json.write(separator)
            self.json.write(texts.slice(0, texts.size - 2))
            lengths = pc.binary_length(rows.column(2)).to_numpy().astype(np.int64)
            offsets = self.position + len(separator) + np.cumsum(lengths + 2) - (lengths + 2)
            self.position += len(separator) + texts.size - 2
            columns = [rows.column(0), rows.column(1), pa.array(offsets), pa.array(lengths)]
            self.arrow.write_batch(pa.record_batch(columns, schema=RECORDS_SCHEMA))
            self.written += rows.num_rows

    def _count(self, segment: Segment, keep: np.ndarray, rows: pa.RecordBatch, rejects: list) -> None:
        report = self.report
        report.read += segment.count
        report.kept += rows.num_rows
        for _, reason, _, source in rejects:
            report.rejected[reason] += 1
            report.read_by_source[source] += 1
        for entry in pc.value_counts(rows.column(0)).to_pylist():
            report.read_by_source[entry["values"]] += entry["counts"]
            report.kept_by_source[entry["values"]] += entry["counts"]
        for fixes, dropped, kept in zip(segment.fixes, segment.dropped, keep):
            if kept and fixes:
                for fix in set(fixes):
                    report.fixes[fix] += 1
            if kept and dropped:
                report.dropped_fields.update(dropped)

    def close(self) -> int:
        """Finish corrected.json; returns its size."""
        end = b"\n]\n" if self.written else b"]\n"
        self.json.write(end)
        return self.position + len(end)


def joined_texts(texts: pa.Array | pa.ChunkedArray, separator: str) -> pa.Buffer:
    """The strings of ``texts``, each followed by ``separator``, as one Arrow buffer (no Python strings)."""
    joined = pc.binary_join_element_wise(texts, "", separator)
    if isinstance(joined, pa.ChunkedArray):
        joined = joined.combine_chunks()
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[joined.offset : joined.offset + len(joined) + 1]
    return joined.buffers()[2].slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


_worker_tree: ImageTree | None = None


def _start_worker(tree: ImageTree) -> None:
    global _worker_tree
    _worker_tree = tree


def _worker_segment(path: str, start: int, stop: int, sync: str, check: str) -> Segment:
    return correct_segment(path, start, stop, sync if start else None, _worker_tree, check)


def _segments_in_order(path: str, tree: ImageTree, check: str, workers: int, segment_bytes: int) -> Iterator[Segment]:
    """Segments covering the list, in order; every one starts exactly where the previous one ended."""
    size = os.path.getsize(path)
    bounds = list(range(0, size, segment_bytes))[1:] + [size]
    with contextlib.ExitStack() as stack:
        if workers <= 1 or len(bounds) == 1:
            guesses: Iterator[Segment | None] = (None for _ in bounds)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"),  # workers inherit the file index
                initializer=_start_worker, initargs=(tree,),
            ))
            stack.callback(pool.shutdown, cancel_futures=True)
            guesses = _guessed_segments(pool, path, bounds, element_start(path), check, workers)
        expected: int | None = 0  # where the next segment must start; None once the array has ended
        for stop, guess in zip(bounds, guesses):
            if expected is None or expected >= stop > 0:
                continue  # the array ended before, or one record spans this whole range (an empty file is read)
            trusted = guess is not None and (
                guess.start == expected == 0 or (guess.error is None and guess.first_offset == expected)
            )
            segment = guess if trusted else correct_segment(path, expected, stop, None, tree, check)
            yield segment
            expected = segment.next_offset


def _guessed_segments(
    pool: ProcessPoolExecutor, path: str, bounds: list[int], sync: str, check: str, workers: int
) -> Iterator[Segment | None]:
    """Worker results for the byte ranges ending at ``bounds``, in order (the first one has no guess)."""
    starts = [0] + bounds[:-1]
    pending: list[Future] = []
    for number in range(len(bounds)):
        while len(pending) < 2 * workers and number + len(pending) < len(bounds):
            at = number + len(pending)
            pending.append(pool.submit(_worker_segment, path, starts[at], bounds[at], sync, check))
        yield pending.pop(0).result()


def check_outcome(report: dict, rejects: Path, max_rejected_fraction: float, allow_empty: bool) -> None:
    """Raise ``DataError`` when the list went bad: too many records rejected for a defect, or none kept."""
    read, kept = report["read"], report["kept"]
    defects = {reason: count for reason, count in report["rejected"].items() if count and reason not in NOT_DEFECTS}
    rejected = sum(defects.values())
    if read and rejected / read > max_rejected_fraction:
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(defects.items()))
        raise DataError(
            f"{report['list']}: {rejected} of {read} records rejected ({rejected / read:.1%} > max_rejected_fraction "
            f"{max_rejected_fraction:.1%}; {reasons}) -- wrong image root or damaged data? Each record's reason is "
            f"in {rejects}; raise data.max_rejected_fraction (--max-rejected-fraction) if this is expected"
        )
    if not kept and not allow_empty:
        what = "the list holds no records" if not read else f"no record kept of {read}"
        raise DataError(f"{report['list']}: {what}; set data.allow_empty (--allow-empty) if this is expected")


def correct_list(
    list_path: str | os.PathLike, image_root: str | os.PathLike, check: str, out_dir: str | os.PathLike,
    workers: int | None = None, segment_bytes: int = SEGMENT_BYTES,
    max_rejected_fraction: float = MAX_REJECTED_FRACTION, allow_empty: bool = False,
) -> dict:
    """Correct ``list_path`` into ``out_dir``; returns the report (also written to report.json).

    Raises ``DataError`` when the list is unreadable or went bad (``check_outcome``); a list that went bad
    leaves ``rejects.jsonl`` alone in ``out_dir``.
    """
    if check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
    list_path, out_dir = Path(list_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT).unlink(missing_ok=True)  # report.json marks a complete run: never leave a stale one
    tree = ImageTree(image_root, index_files=check != "none")
    report = _Report(list_path, tree, check)
    workers = workers or min(8, os.cpu_count() or 1)
    with contextlib.ExitStack() as stack:
        writer = _Writer(stack, out_dir, report)
        for segment in _segments_in_order(str(list_path), tree, check, workers, segment_bytes):
            writer.add(segment)
        list_bytes = writer.close()
    result = {**report.as_dict(), "list_bytes": list_bytes}
    try:
        check_outcome(result, out_dir / REJECTS, max_rejected_fraction, allow_empty)
    except DataError:
        (out_dir / CORRECTED_JSON).unlink()
        (out_dir / CORRECTED_ARROW).unlink()
        raise
    write_json(out_dir / REPORT, result)
    return result
