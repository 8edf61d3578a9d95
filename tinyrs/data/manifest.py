"""The Parquet manifest of a training list: written in row groups, read by random access per row group.

Training processes read records from here instead of loading the 1-1.5 GB JSON list in every GPU
process (defect 10 of the reference). Columns and metadata are fixed in docs/design.md:
``index`` (position in list.json), ``source``, ``images`` (relative to the image root) and
``conversations``; schema metadata ``tinyrs.image_root``, ``tinyrs.source_list``, ``tinyrs.sha256``.
A ``Manifest`` pickles as its path only, so dataloader workers reopen it lazily.
"""
from __future__ import annotations

import bisect
import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tinyrs.io import DataError, atomic_open

CONVERSATION_TYPE = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
IMAGES_TYPE = pa.list_(pa.string())
MANIFEST_FIELDS = [
    pa.field("index", pa.int64()),
    pa.field("source", pa.string()),
    pa.field("images", IMAGES_TYPE),
    pa.field("conversations", CONVERSATION_TYPE),
]
META_IMAGE_ROOT = "tinyrs.image_root"
META_SOURCE_LIST = "tinyrs.source_list"
META_SHA256 = "tinyrs.sha256"
ROW_GROUP_ROWS = 1024  # a random read decodes one whole group (about 1.5 ms for 1024 rows)


def manifest_schema(image_root: str | os.PathLike, source_list: str | os.PathLike, list_sha256: str) -> pa.Schema:
    metadata = {
        META_IMAGE_ROOT: str(Path(image_root).absolute()),
        META_SOURCE_LIST: str(source_list),
        META_SHA256: list_sha256,
    }
    return pa.schema(MANIFEST_FIELDS, metadata=metadata)


class RowGroupBuffer:
    """Collects manifest rows and hands them to the Parquet writer in full row groups."""

    def __init__(self, writer: pq.ParquetWriter, schema: pa.Schema, row_group_rows: int):
        self._writer = writer
        self._schema = schema
        self._row_group_rows = row_group_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        """Append rows: a table holding the manifest columns."""
        self._pending.append(table.select(self._schema.names).cast(self._schema))
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._row_group_rows:
            self.flush(keep_partial_group=True)

    def flush(self, keep_partial_group: bool = False) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        cut = table.num_rows - table.num_rows % self._row_group_rows if keep_partial_group else table.num_rows
        if cut:
            self._writer.write_table(table.slice(0, cut), row_group_size=self._row_group_rows)
        rest = table.slice(cut)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows


@contextlib.contextmanager
def manifest_writer(
    path: str | os.PathLike, schema: pa.Schema, row_group_rows: int = ROW_GROUP_ROWS
) -> Iterator[RowGroupBuffer]:
    """Write a manifest through a temporary file; it appears at ``path`` only when the block succeeds."""
    # Dictionary encoding pays off only for the few sources; zstd handles repeated prompt text anyway.
    options = {"compression": "zstd", "use_dictionary": ["source"]}
    with atomic_open(path, "wb") as handle, pq.ParquetWriter(handle, schema, **options) as writer:
        rows = RowGroupBuffer(writer, schema, row_group_rows)
        yield rows
        rows.flush()


class Manifest:
    """Random access to manifest rows: ``len(m)``, ``m[i]`` (image paths absolute), ``m.sources()``."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._file: pq.ParquetFile | None = None
        self.metadata: dict[str, str] = {}
        self.image_root = ""
        self._group_starts: list[int] = []
        self._group_index = -1
        self._group: pa.Table | None = None

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def _open(self) -> pq.ParquetFile:
        if self._file is None:
            handle = pq.ParquetFile(self.path, memory_map=True)
            names = handle.schema_arrow.names
            if names != [field.name for field in MANIFEST_FIELDS]:
                raise DataError(f"{self.path}: not a tinyrs manifest: columns {names}")
            metadata = {key.decode(): value.decode() for key, value in (handle.schema_arrow.metadata or {}).items()}
            missing = [key for key in (META_IMAGE_ROOT, META_SOURCE_LIST, META_SHA256) if key not in metadata]
            if missing:
                raise DataError(f"{self.path}: not a tinyrs manifest: schema metadata {missing} missing")
            self.metadata = metadata
            self.image_root = metadata[META_IMAGE_ROOT]
            sizes = [handle.metadata.row_group(g).num_rows for g in range(handle.num_row_groups)]
            self._group_starts = np.concatenate([[0], np.cumsum(sizes)]).tolist()
            self._file = handle
        return self._file

    def __len__(self) -> int:
        return self._open().metadata.num_rows

    def __getitem__(self, position: int) -> dict[str, Any]:
        handle = self._open()
        total = handle.metadata.num_rows
        if position < 0:
            position += total
        if not 0 <= position < total:
            raise IndexError(f"{self.path}: row {position} out of range (0..{total - 1})")
        group = bisect.bisect_right(self._group_starts, position) - 1
        if group != self._group_index:
            self._group = handle.read_row_group(group, use_threads=False)
            self._group_index = group
        row = self._group.slice(position - self._group_starts[group], 1).to_pylist()[0]
        row["images"] = [os.path.join(self.image_root, image) for image in row["images"]]
        return row

    def sources(self) -> list[str]:
        """The source of every row, in row order (for source- or length-grouped samplers)."""
        column = self._open().read(columns=["source"], use_threads=False).column("source")
        encoded = column.combine_chunks().dictionary_encode()
        names = np.array(encoded.dictionary.to_pylist(), dtype=object)
        return names[encoded.indices.to_numpy()].tolist()

    def text_chars_and_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Per row: characters in all conversation turns, and number of images (columnar, no row decoding)."""
        import pyarrow.compute as pc

        table = self._open().read(columns=["images", "conversations"], use_threads=False)
        conversations = table.column("conversations").combine_chunks()
        values = pc.struct_field(conversations.flatten(), "value")
        turn_chars = pc.fill_null(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)
        cumulative = np.concatenate([[0], np.cumsum(turn_chars, dtype=np.int64)])
        offsets = conversations.offsets.to_numpy() - conversations.offsets[0].as_py()
        chars = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
        images = pc.list_value_length(table.column("images")).to_numpy()
        return chars, images


def open_manifest(path: str | os.PathLike) -> Manifest:
    """Open a manifest and check its columns and metadata (the row data is read on access)."""
    manifest = Manifest(path)
    manifest._open()
    return manifest
