"""tinyrs data oversample: per-source factors, determinism, list.json and manifest agree, bounded buckets."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from data_fixtures import files_under, make_image_root, record, write_list

from tinyrs.data.correct import correct_list
from tinyrs.data.manifest import open_manifest
from tinyrs.data.oversample import load_factors, oversample, plan_copies
from tinyrs.data.stream import iter_json_array
from tinyrs.io import DataError, sha256_file

FACTORS = {"default": 1.0, "factors": {"A": 2.5, "B": 0.3}}


@pytest.fixture()
def corrected(tmp_path):
    """A corrected list: 10 records of source A, 20 of B, 5 of C."""
    root = make_image_root(tmp_path / "images", {"A": 10, "B": 20, "C": 5})
    records = [record(i, source=s) for s, count in (("A", 10), ("B", 20), ("C", 5)) for i in range(count)]
    correct_list(write_list(tmp_path / "raw.json", records), root, "exists", tmp_path / "corrected")
    return tmp_path / "corrected"


def read_list(path) -> list[dict]:
    return [item for _, item in iter_json_array(path)]


def test_fractional_factors_repeat_and_subsample_per_source(corrected, tmp_path):
    report = oversample(corrected, FACTORS, 3, tmp_path / "out")
    counts = Counter(item["source_dataset"] for item in read_list(tmp_path / "out" / "list.json"))
    assert counts == {"A": 25, "B": 6, "C": 5}
    assert report["per_source"] == {
        "A": {"before": 10, "after": 25}, "B": {"before": 20, "after": 6}, "C": {"before": 5, "after": 5},
    }
    assert report["records_before"] == 35 and report["records_after"] == 36


def test_plan_copies_gives_whole_and_seeded_extra_copies():
    codes = np.array([0] * 10 + [1] * 20)
    copies = plan_copies(codes, ["A", "B"], FACTORS, np.random.default_rng(0))
    assert sorted(Counter(copies[:10]).items()) == [(2, 5), (3, 5)]
    assert sorted(Counter(copies[10:]).items()) == [(0, 14), (1, 6)]
    again = plan_copies(codes, ["A", "B"], FACTORS, np.random.default_rng(0))
    other = plan_copies(codes, ["A", "B"], FACTORS, np.random.default_rng(1))
    assert (copies == again).all() and not (copies == other).all()


def test_same_seed_same_bytes_other_seed_other_order(corrected, tmp_path):
    for name, seed in [("one", 5), ("two", 5), ("three", 6)]:
        oversample(corrected, FACTORS, seed, tmp_path / name)
    one, two, three = (tmp_path / name / "list.json" for name in ("one", "two", "three"))
    assert one.read_bytes() == two.read_bytes()
    tables = [pq.read_table(tmp_path / name / "manifest.parquet") for name in ("one", "two")]
    assert tables[0].equals(tables[1])
    assert read_list(one) != read_list(three)


def test_output_is_shuffled(corrected, tmp_path):
    oversample(corrected, {"default": 1.0}, 0, tmp_path / "out")
    shuffled = read_list(tmp_path / "out" / "list.json")
    original = read_list(corrected / "corrected.json")
    assert shuffled != original and sorted(map(json.dumps, shuffled)) == sorted(map(json.dumps, original))


def test_no_factors_copies_the_list_unchanged(corrected, tmp_path):
    report = oversample(corrected, None, 0, tmp_path / "out")
    assert (tmp_path / "out" / "list.json").read_bytes() == (corrected / "corrected.json").read_bytes()
    assert report["records_after"] == report["records_before"] == 35


@pytest.mark.parametrize("bucket_bytes", [1, 2000, 1 << 25])
def test_manifest_rows_are_the_list_records_whatever_the_bucket_size(corrected, tmp_path, bucket_bytes):
    out = tmp_path / f"out{bucket_bytes}"
    before = {name for name in files_under(tmp_path) if not name.startswith(out.name)}
    report = oversample(corrected, FACTORS, 1, out, bucket_bytes=bucket_bytes)
    assert files_under(out) == {"list.json", "manifest.parquet", "report.json"}  # buckets are gone
    assert {name for name in files_under(tmp_path) if not name.startswith(out.name)} == before
    items = read_list(out / "list.json")
    manifest = open_manifest(out / "manifest.parquet")
    assert len(manifest) == len(items) == report["records_after"]
    for position, item in enumerate(items):
        row = manifest[position]
        assert row["index"] == position and row["source"] == item["source_dataset"]
        assert row["conversations"] == item["conversations"]
        assert row["images"] == [str(tmp_path / "images" / item["image"])]
    assert manifest.metadata["tinyrs.sha256"] == sha256_file(out / "list.json") == report["list_sha256"]
    assert manifest.metadata["tinyrs.source_list"] == str((out / "list.json").absolute())


def test_unused_factors_are_reported(corrected, tmp_path):
    report = oversample(corrected, {"default": 1, "factors": {"A": 1, "Z": 3}}, 0, tmp_path / "out")
    assert report["unused_factors"] == ["Z"]


def test_factors_from_text_or_file(tmp_path):
    assert load_factors(None) is None and load_factors("null") is None
    assert load_factors('{"factors": {"A": 2}}') == {"default": 1.0, "factors": {"A": 2.0}}
    path = tmp_path / "factors.json"
    path.write_text(json.dumps({"seed": 4, "default": 0.5}))
    assert load_factors(str(path)) == {"default": 0.5, "factors": {}, "seed": 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "not JSON"),
        ('{"default": -1}', "default: expected a non-negative number"),
        ('{"factors": {"A": "2"}}', "factors.A: expected a non-negative number"),
        ('{"factor": {}}', "expected null or an object"),
        ('{"seed": 1.5}', "seed: expected an integer"),
    ],
)
def test_bad_factors_are_errors(text, message):
    with pytest.raises(DataError, match=message):
        load_factors(text)


def test_seed_in_factors_must_match(corrected, tmp_path):
    with pytest.raises(DataError, match="seed 4 differs from --seed 5"):
        oversample(corrected, load_factors('{"seed": 4}'), 5, tmp_path / "out")


def test_unfinished_or_edited_correct_output_is_refused(corrected, tmp_path):
    with (corrected / "corrected.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(DataError, match="changed since"):
        oversample(corrected, None, 0, tmp_path / "out")
    (corrected / "report.json").unlink()
    with pytest.raises(DataError, match="report.json is missing"):
        oversample(corrected, None, 0, tmp_path / "out")
