"""The Parquet manifest: schema and metadata of docs/design.md, row groups, random access, pickling."""
from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tinyrs.data.manifest import (
    CONVERSATION_TYPE, IMAGES_TYPE, META_IMAGE_ROOT, META_SHA256, META_SOURCE_LIST, manifest_schema,
    manifest_writer, open_manifest,
)
from tinyrs.io import DataError


def rows(start: int, count: int) -> pa.Table:
    numbers = range(start, start + count)
    return pa.table({
        "index": pa.array(numbers, pa.int64()),
        "source": [f"src{n % 3}" for n in numbers],
        "images": pa.array([[f"src{n % 3}/img{n}.jpg"] for n in numbers], IMAGES_TYPE),
        "conversations": pa.array(
            [[{"from": "human", "value": f"<image>\nq{n}"}, {"from": "gpt", "value": f"a{n}"}] for n in numbers],
            CONVERSATION_TYPE,
        ),
    })


@pytest.fixture()
def manifest_path(tmp_path):
    path = tmp_path / "manifest.parquet"
    schema = manifest_schema(tmp_path / "images", tmp_path / "list.json", "ab" * 32)
    with manifest_writer(path, schema, row_group_rows=8) as writer:
        for start, count in [(0, 5), (5, 13), (18, 4)]:
            writer.write(rows(start, count))
    return path


def test_schema_metadata_and_row_groups(manifest_path, tmp_path):
    schema = pq.read_schema(manifest_path)
    assert schema.names == ["index", "source", "images", "conversations"]
    assert schema.field("index").type == pa.int64() and schema.field("images").type == pa.list_(pa.string())
    assert schema.field("conversations").type.value_type == pa.struct([("from", pa.string()), ("value", pa.string())])
    metadata = {key.decode(): value.decode() for key, value in schema.metadata.items()}
    assert metadata[META_IMAGE_ROOT] == str(tmp_path / "images")
    assert metadata[META_SOURCE_LIST] == str(tmp_path / "list.json")
    assert metadata[META_SHA256] == "ab" * 32
    groups = pq.ParquetFile(manifest_path).metadata
    assert [groups.row_group(g).num_rows for g in range(groups.num_row_groups)] == [8, 8, 6]


def test_random_access_returns_absolute_image_paths(manifest_path, tmp_path):
    manifest = open_manifest(manifest_path)
    assert len(manifest) == 22
    for position in [21, 0, 9, 8, 15, 3, -1]:
        number = position % 22
        assert manifest[position] == {
            "index": number,
            "source": f"src{number % 3}",
            "images": [str(tmp_path / "images" / f"src{number % 3}" / f"img{number}.jpg")],
            "conversations": [
                {"from": "human", "value": f"<image>\nq{number}"}, {"from": "gpt", "value": f"a{number}"},
            ],
        }
    with pytest.raises(IndexError):
        manifest[22]


def test_sources_in_row_order(manifest_path):
    assert open_manifest(manifest_path).sources() == [f"src{n % 3}" for n in range(22)]


def test_pickles_as_its_path_and_reopens_lazily(manifest_path):
    manifest = open_manifest(manifest_path)
    manifest[5]
    state = pickle.dumps(manifest)
    assert len(state) < 300
    copy = pickle.loads(state)
    assert copy._file is None
    assert copy[5] == manifest[5] and len(copy) == 22


def test_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "manifest.parquet"
    with pytest.raises(RuntimeError):
        with manifest_writer(path, manifest_schema(tmp_path, tmp_path / "list.json", "0" * 64)) as writer:
            writer.write(rows(0, 3))
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []


def test_a_parquet_file_without_tinyrs_metadata_is_refused(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(rows(0, 2), path)
    with pytest.raises(DataError, match="not a tinyrs manifest: schema metadata"):
        open_manifest(path)
