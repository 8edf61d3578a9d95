"""``tinyrs data oversample``: repeat or subsample records per source, shuffle, write list.json + manifest.

Factors are per source (``source_dataset``, else the image's sub-folder), with a default for unlisted
sources. A factor ``f`` gives every record ``floor(f)`` copies plus one more copy for a seeded random
``round(frac(f) * n)`` of the source's ``n`` records: 2.5 doubles and adds half, 0.3 keeps 30%.
Without factors the list is copied unchanged (same order); with factors the output is shuffled.
Everything depends only on the input and the seed. No records to write (an empty input, or factors that
keep nothing) is an error unless empty lists are allowed; the outputs of an earlier run are removed
first, so a failure leaves none that look complete.

No Python code touches single records: ``tinyrs data correct`` left each record's source, images and
the place of its JSON text in corrected.json in ``corrected.arrow``. Output rows go through an external
shuffle: each input batch is scattered into buckets of consecutive output positions (temporary Arrow
files inside ``out_dir``), then each bucket is put in order and appended to ``list.json`` (the JSON
texts as they are) and, in a second sweep (which needs the list's sha256 for the schema metadata), to
``manifest.parquet``, whose ``conversations`` Arrow's C++ JSON reader parses from the same texts.
Memory: a few arrays of one number per record plus one bucket.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from tinyrs.data.correct import CORRECTED_ARROW, CORRECTED_JSON, REPORT, joined_texts
from tinyrs.data.manifest import CONVERSATION_TYPE, manifest_schema, manifest_writer
from tinyrs.io import DataError, atomic_open, read_json, write_json
from tinyrs.paths import LIST_JSON, LIST_MANIFEST as MANIFEST

BUCKET_BYTES = 32 << 20  # JSON text in one bucket of output rows; peak memory is a few times this
_BUCKET_DIR = ".oversample-buckets"
_CONVERSATIONS_ONLY = pa.schema([("conversations", CONVERSATION_TYPE)])
_ROW_NAMES = ["source", "images", "json"]
# The factors of a list whose config says `oversample: null`: every record once, shuffled with seed 0, as the
# workflow has always prepared such lists (by hand, no factors at all copies a list in its order).
SHUFFLED_ONCE = {"seed": 0, "default": 1.0}


def load_factors(value: str | None) -> dict | None:
    """``--factors``: JSON text or a JSON file holding null or ``{"default": f, "factors": {source: f}, "seed"?}``."""
    if value is None:
        return None
    text = Path(value).read_text(encoding="utf-8") if os.path.isfile(value) else value
    try:
        factors = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"--factors: not JSON and not an existing file: {err}") from None
    return check_factors(factors, value)


def check_factors(factors: Any, origin: str = "factors") -> dict | None:
    if factors is None:
        return None
    if not isinstance(factors, dict) or set(factors) - {"default", "factors", "seed"}:
        raise DataError(f"{origin}: expected null or an object with keys default, factors (and seed)")
    default = factors.get("default", 1.0)
    per_source = factors.get("factors") or {}
    if not isinstance(per_source, dict):
        raise DataError(f"{origin}: factors: expected an object mapping source to factor")
    for name, factor in [("default", default), *((f"factors.{key}", value) for key, value in per_source.items())]:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 0:
            raise DataError(f"{origin}: {name}: expected a non-negative number, got {factor!r}")
    checked: dict[str, Any] = {"default": float(default), "factors": {k: float(v) for k, v in per_source.items()}}
    if "seed" in factors:
        if isinstance(factors["seed"], bool) or not isinstance(factors["seed"], int):
            raise DataError(f"{origin}: seed: expected an integer, got {factors['seed']!r}")
        checked["seed"] = factors["seed"]
    return checked


def plan_copies(codes: np.ndarray, names: list[str], factors: dict | None, rng: np.random.Generator) -> np.ndarray:
    """Number of output copies of each input row (``codes`` indexes ``names``, the row's source)."""
    copies = np.ones(len(codes), dtype=np.int64)
    if factors is None:
        return copies
    for code in sorted(range(len(names)), key=names.__getitem__):
        rows = np.flatnonzero(codes == code)
        factor = factors["factors"].get(names[code], factors["default"])
        whole = math.floor(factor)
        copies[rows] = whole
        extra = int((factor - whole) * len(rows) + 0.5)
        if extra:
            copies[rng.choice(rows, extra, replace=False)] += 1
    return copies


def _read_sources(records_path: Path) -> pa.DictionaryArray:
    """The source column alone (memory-mapped, so the other columns are never read)."""
    with pa.memory_map(str(records_path)) as mapped:
        column = pa.ipc.open_file(mapped).read_all().column("source").combine_chunks()
        return column.dictionary_encode()


def _with_texts(batch: pa.RecordBatch, texts: BinaryIO) -> pa.RecordBatch:
    """The batch's source and images with each record's JSON text, read from corrected.json in one piece."""
    offsets, lengths = batch.column("offset").to_numpy(), batch.column("length").to_numpy()
    first, end = int(offsets[0]), int(offsets[-1] + lengths[-1])
    data = os.pread(texts.fileno(), end - first, first)
    bounds = np.append(offsets - first, end - first).astype(np.int32)
    # Each value runs to the next record, so it ends with the ",\n" between them: trim it.
    joined = pa.StringArray.from_buffers(batch.num_rows, pa.py_buffer(bounds), pa.py_buffer(data))
    json_texts = pc.utf8_rtrim(joined, characters=",\n")
    return pa.record_batch([batch.column("source"), batch.column("images"), json_texts], names=_ROW_NAMES)


class _Buckets:
    """Output rows scattered into buckets of consecutive output positions, kept as Arrow stream files."""

    def __init__(self, directory: Path, count: int, rows_per_bucket: int):
        directory.mkdir(parents=True)
        self.directory = directory
        self.rows_per_bucket = rows_per_bucket
        self.count = count
        self._writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def path(self, bucket: int) -> Path:
        return self.directory / f"{bucket:05d}.arrows"

    def add(self, batch: pa.RecordBatch, rows: np.ndarray, positions: np.ndarray) -> None:
        """Append ``batch`` rows (source, images, json): row ``rows[i]`` goes to output position ``positions[i]``."""
        buckets = positions // self.rows_per_bucket
        order = np.argsort(buckets, kind="stable")
        rows = batch.take(pa.array(rows[order]))
        positions, buckets = positions[order], buckets[order]
        bounds = np.searchsorted(buckets, np.arange(self.count + 1))
        with_index = pa.RecordBatch.from_arrays(
            [pa.array(positions, pa.int64()), *rows.columns], names=["index", *rows.schema.names]
        )
        for bucket in np.flatnonzero(np.diff(bounds)):
            start, stop = int(bounds[bucket]), int(bounds[bucket + 1])
            part = with_index.slice(start, stop - start)
            writer = self._writers.get(bucket)
            if writer is None:
                writer = self._writers[bucket] = pa.ipc.new_stream(str(self.path(bucket)), part.schema)
            writer.write_batch(part)

    def close(self) -> None:
        while self._writers:
            self._writers.popitem()[1].close()

    def in_order(self) -> Iterator[pa.Table]:
        """Each bucket's rows sorted by output position (positions in a bucket are consecutive)."""
        for bucket in range(self.count):
            path = self.path(bucket)
            if not path.exists():
                continue
            with pa.OSFile(str(path)) as handle:
                table = pa.ipc.open_stream(handle).read_all().combine_chunks()  # take() on many chunks is slow
            positions = table.column("index").to_numpy()
            order = np.empty(len(positions), dtype=np.int64)
            order[positions - positions.min()] = np.arange(len(positions))
            yield table.take(pa.array(order))


def _write_list(buckets: _Buckets, path: Path) -> str:
    """Write list.json from the buckets; returns its sha256."""
    digest = hashlib.sha256()
    with atomic_open(path, "wb") as handle:
        def emit(data) -> None:
            digest.update(data)
            handle.write(data)

        emit(b"[")
        written = False
        for table in buckets.in_order():
            emit(b",\n" if written else b"\n")
            text = joined_texts(table.column("json"), ",\n")
            emit(text.slice(0, text.size - 2))  # the separator goes before the next bucket's rows
            written = True
        emit(b"\n]\n" if written else b"]\n")
    return digest.hexdigest()


def _conversations(texts: pa.ChunkedArray) -> pa.ChunkedArray:
    """Parse the ``conversations`` of each record's JSON text with Arrow's (C++) JSON reader."""
    ndjson = joined_texts(texts, "\n")
    table = pj.read_json(
        pa.BufferReader(ndjson),
        read_options=pj.ReadOptions(use_threads=False, block_size=ndjson.size + 1),
        parse_options=pj.ParseOptions(explicit_schema=_CONVERSATIONS_ONLY, unexpected_field_behavior="ignore"),
    )
    if table.num_rows != len(texts):
        raise DataError(f"parsed {table.num_rows} records from {len(texts)} JSON texts (a text spans lines?)")
    return table.column("conversations")


def _write_manifest(buckets: _Buckets, path: Path, schema: pa.Schema) -> None:
    with manifest_writer(path, schema) as manifest:
        for table in buckets.in_order():
            conversations = _conversations(table.column("json"))
            columns = [table.column("index"), table.column("source"), table.column("images"), conversations]
            manifest.write(pa.Table.from_arrays(columns, names=["index", "source", "images", "conversations"]))


def oversample(
    in_dir: str | os.PathLike, factors: dict | None, seed: int, out_dir: str | os.PathLike,
    bucket_bytes: int = BUCKET_BYTES, allow_empty: bool = False,
) -> dict:
    """Oversample the output of ``tinyrs data correct`` in ``in_dir`` into ``out_dir``; returns the report."""
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for output in (REPORT, MANIFEST, LIST_JSON):  # report.json marks a complete run; the manifest feeds training
        (out_dir / output).unlink(missing_ok=True)
    factors = check_factors(factors)
    if factors is not None and factors.get("seed", seed) != seed:
        raise DataError(f"oversample: the factors' seed {factors['seed']} differs from --seed {seed}")
    if not (in_dir / REPORT).exists():
        raise DataError(f"{in_dir}: not a finished `tinyrs data correct` output ({REPORT} is missing)")
    corrected = read_json(in_dir / REPORT)
    records_path, texts_path = in_dir / CORRECTED_ARROW, in_dir / CORRECTED_JSON
    if texts_path.stat().st_size != corrected["list_bytes"]:
        raise DataError(f"{texts_path}: changed since `tinyrs data correct` wrote it (size differs from {REPORT})")

    sources = _read_sources(records_path)
    if len(sources) != corrected["kept"]:
        raise DataError(f"{records_path}: {len(sources)} rows but {REPORT} says {corrected['kept']} were kept")
    names = sources.dictionary.to_pylist()
    codes = sources.indices.to_numpy(zero_copy_only=False)
    rng = np.random.default_rng(seed)
    copies = plan_copies(codes, names, factors, rng)
    total = int(copies.sum())
    if not total and not allow_empty:
        raise DataError(
            f"{in_dir}: no records to write (0 of {len(codes)} records left by the factors {factors}); "
            "set data.allow_empty (--allow-empty) if this is expected"
        )
    positions = np.arange(total) if factors is None else rng.permutation(total)
    entry_starts = np.concatenate([[0], np.cumsum(copies)])

    bytes_per_row = max(1, corrected["list_bytes"] // max(1, len(codes)))
    rows_per_bucket = max(1, bucket_bytes // bytes_per_row)
    bucket_dir = out_dir / _BUCKET_DIR
    shutil.rmtree(bucket_dir, ignore_errors=True)
    buckets = _Buckets(bucket_dir, max(1, -(-total // rows_per_bucket)), rows_per_bucket)
    try:
        with pa.OSFile(str(records_path)) as handle, open(texts_path, "rb") as texts:
            reader = pa.ipc.open_file(handle)
            first_row = 0
            for number in range(reader.num_record_batches):
                batch = reader.get_batch(number)
                rows = np.arange(first_row, first_row + batch.num_rows)
                repeat = np.repeat(rows - first_row, copies[rows])
                entries = slice(entry_starts[first_row], entry_starts[first_row + batch.num_rows])
                if len(repeat):
                    buckets.add(_with_texts(batch, texts), repeat, positions[entries])
                first_row += batch.num_rows
        buckets.close()
        list_sha256 = _write_list(buckets, out_dir / LIST_JSON)
        schema = manifest_schema(corrected["image_root"], (out_dir / LIST_JSON).absolute(), list_sha256)
        _write_manifest(buckets, out_dir / MANIFEST, schema)
    finally:
        buckets.close()
        shutil.rmtree(bucket_dir, ignore_errors=True)

    before = np.bincount(codes, minlength=len(names))
    after = np.bincount(codes, weights=copies, minlength=len(names)).astype(np.int64)
    order = sorted(range(len(names)), key=names.__getitem__)
    report = {
        "in_dir": str(in_dir),
        "image_root": corrected["image_root"],
        "seed": seed,
        "factors": factors,
        "unused_factors": sorted(set((factors or {}).get("factors", {})) - set(names)),
        "records_before": len(codes),
        "records_after": total,
        "per_source": {names[i]: {"before": int(before[i]), "after": int(after[i])} for i in order},
        "list_sha256": list_sha256,
        "outputs": {"list": LIST_JSON, "manifest": MANIFEST},
    }
    write_json(out_dir / REPORT, report)
    return report
