"""tinyrs data correct: fixes, one test per kind of bad input, atomic outputs, parallel = sequential."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from data_fixtures import files_under, gpt, human, make_image_root, read_jsonl, record, write_list

from tinyrs.data.correct import correct_list
from tinyrs.io import DataError


@pytest.fixture()
def root(tmp_path) -> Path:
    return make_image_root(tmp_path / "images", {"UCM": 6, "crowdAI": 2, "dior": 2})


def run(tmp_path: Path, records: list, root: Path, check: str = "exists", **kwargs) -> tuple[dict, list[dict], Path]:
    """Correct ``records``; returns the report, the rejects and the output folder (and checks containment).

    Any share of rejects is accepted: how much bad data fails a list is tested in test_reliability_data.py.
    """
    raw = write_list(tmp_path / "raw.json", records)
    out = tmp_path / "out"
    outside = {name for name in files_under(tmp_path) if not name.startswith("out/")}
    report = correct_list(raw, root, check, out, max_rejected_fraction=1, allow_empty=True, **kwargs)
    assert json.loads((out / "report.json").read_text()) == report
    assert {name for name in files_under(tmp_path) if not name.startswith("out/")} == outside
    assert files_under(out) == {"corrected.json", "corrected.arrow", "rejects.jsonl", "report.json"}
    return report, read_jsonl(out / "rejects.jsonl"), out


def corrected(out: Path) -> list[dict]:
    return json.loads((out / "corrected.json").read_text(encoding="utf-8"))


def test_clean_records_get_their_folder_and_keep_the_reference_schema(tmp_path, root):
    records = [record(0), record(1, image="img2.jpg")]
    report, rejects, out = run(tmp_path, records, root)
    assert rejects == []
    assert report["read"] == report["kept"] == 2 and report["rejected_total"] == 0
    assert report["fixes"]["image_folder_added"] == 2
    assert corrected(out) == [
        {**records[0], "image": "UCM/img0.jpg"},
        {**records[1], "image": "UCM/img2.jpg"},
    ]
    assert list(corrected(out)[0]) == ["id", "source_dataset", "image", "conversations"]
    assert report["per_source"] == {"UCM": {"read": 2, "kept": 2}}


def test_folder_spelling_is_fixed_case_insensitively_and_for_corwdai(tmp_path, root):
    records = [record(0, source="ucm"), record(1, source="corwdAI"), record(1, source="DIOR", image="img1.jpg")]
    report, rejects, out = run(tmp_path, records, root)
    assert rejects == []
    assert [item["image"] for item in corrected(out)] == ["UCM/img0.jpg", "crowdAI/img1.jpg", "dior/img1.jpg"]
    assert report["fixes"]["image_folder_respelled"] == 3
    assert [item["source_dataset"] for item in corrected(out)] == ["ucm", "corwdAI", "DIOR"]


def test_paths_with_a_folder_are_used_as_they_are(tmp_path, root):
    records = [record(0, source=None, image="UCM/img0.jpg"), record(1, source="UCM", image="./dior//img1.jpg")]
    report, rejects, out = run(tmp_path, records, root)
    assert rejects == []
    assert [item["image"] for item in corrected(out)] == ["UCM/img0.jpg", "dior/img1.jpg"]
    assert report["fixes"]["image_folder_added"] == 0 and report["fixes"]["image_path_normalized"] == 1
    assert set(report["per_source"]) == {"UCM"}


def test_missing_image_tag_is_prepended_and_counted_as_a_fix(tmp_path, root):
    two = record(1, image=["img1.jpg", "img2.jpg"], conversations=[human("compare"), gpt("same")])
    records = [record(0, conversations=[human("what?"), gpt("x")]), two]
    report, rejects, out = run(tmp_path, records, root)
    assert rejects == []
    assert corrected(out)[0]["conversations"][0]["value"] == "<image>\nwhat?"
    assert corrected(out)[1]["conversations"][0]["value"] == "<image>\n<image>\ncompare"
    assert corrected(out)[1]["image"] == ["UCM/img1.jpg", "UCM/img2.jpg"]
    assert report["fixes"]["image_tag_added"] == 2


def test_unknown_fields_are_dropped_and_counted(tmp_path, root):
    turns = [{"from": "human", "value": "<image>\nq", "weight": 1}, gpt("a")]
    records = [record(0, size=[4, 4]), record(1, conversations=turns)]
    report, _, out = run(tmp_path, records, root)
    assert report["dropped_fields"] == {"conversations.weight": 1, "size": 1}
    assert "size" not in corrected(out)[0]
    assert corrected(out)[1]["conversations"][0] == human("<image>\nq")


def test_wrong_field_types_are_rejected(tmp_path, root):
    records = [
        record(0, conversations="hello"),
        record(1, image=7),
        record(2, conversations=[human("<image>\nq"), gpt(["a"])]),
        record(3, source_dataset=3),
        "not an object",
        record(5),
    ]
    report, rejects, _ = run(tmp_path, records, root)
    assert report["rejected"]["bad_field_type"] == 4 and report["rejected"]["bad_json_type"] == 1
    assert report["kept"] == 1
    assert [(item["index"], item["reason"]) for item in rejects] == [
        (0, "bad_field_type"), (1, "bad_field_type"), (2, "bad_field_type"), (3, "bad_field_type"),
        (4, "bad_json_type"),
    ]
    assert rejects[2]["detail"].startswith("conversations[1].value: expected a string")


def test_missing_conversations_is_rejected(tmp_path, root):
    broken = record(0)
    del broken["conversations"]
    report, rejects, _ = run(tmp_path, [broken, record(1)], root)
    assert report["rejected"]["missing_conversations"] == 1
    assert rejects == [{"index": 0, "reason": "missing_conversations", "detail": "conversations: field is missing"}]


def test_odd_turn_counts_and_bad_roles_are_rejected(tmp_path, root):
    records = [
        record(0, conversations=[human("<image>\nq")]),
        record(1, conversations=[]),
        record(2, conversations=[gpt("a"), human("<image>\nq")]),
        record(3),
    ]
    report, rejects, _ = run(tmp_path, records, root)
    assert report["rejected"]["odd_turns"] == 2 and report["rejected"]["bad_roles"] == 1
    assert [item["reason"] for item in rejects] == ["odd_turns", "odd_turns", "bad_roles"]
    assert rejects[2]["detail"] == "conversations[0].from: expected 'human', got 'gpt'"


def test_image_tag_mismatch_is_rejected(tmp_path, root):
    records = [
        record(0, conversations=[human("<image><image>\nq"), gpt("a")]),
        record(1, conversations=[human("<image>\nq"), gpt("<image>")]),
        record(2, image=[], conversations=[human("<image>\nq"), gpt("a")]),
    ]
    report, rejects, _ = run(tmp_path, records, root)
    assert report["rejected"]["image_tag_mismatch"] == 3 and report["kept"] == 0
    assert rejects[0]["detail"] == "conversations: 2 <image> tags in human turns for 1 images"


def test_missing_image_is_rejected_with_the_paths_tried(tmp_path, root):
    report, rejects, _ = run(tmp_path, [record(0, image="nope.jpg"), record(1)], root)
    assert report["rejected"]["missing_image"] == 1 and report["kept"] == 1
    assert rejects[0]["index"] == 0 and "UCM/nope.jpg" in rejects[0]["detail"]


def test_check_none_does_not_look_for_files(tmp_path, root):
    report, rejects, out = run(tmp_path, [record(0, image="nope.jpg")], root, check="none")
    assert rejects == [] and corrected(out)[0]["image"] == "UCM/nope.jpg"


def test_corrupt_image_is_rejected_with_check_decode(tmp_path, root):
    (root / "UCM" / "img3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    records = [record(0), record(3)]
    report, rejects, _ = run(tmp_path, records, root, check="decode")
    assert report["rejected"]["corrupt_image"] == 1 and report["kept"] == 1
    assert rejects[0]["index"] == 1 and rejects[0]["detail"].startswith("image: UCM/img3.jpg: ")
    report, rejects, _ = run(tmp_path, records, root, check="exists")
    assert rejects == []


def test_duplicates_are_rejected_after_the_first(tmp_path, root):
    same_image_other_spelling = record(9, source=None, image="UCM/img0.jpg")
    records = [record(0), record(1), {**record(0), "id": "again"}, same_image_other_spelling]
    same_image_other_spelling["conversations"] = record(0)["conversations"]
    report, rejects, out = run(tmp_path, records, root)
    assert report["rejected"]["duplicate"] == 2 and report["kept"] == 2
    assert rejects == [
        {"index": 2, "reason": "duplicate", "detail": "same images and conversations as record 0"},
        {"index": 3, "reason": "duplicate", "detail": "same images and conversations as record 0"},
    ]
    assert [item["id"] for item in corrected(out)] == ["r0", "r1"]


@pytest.mark.parametrize("image", ["/etc/passwd", "../images/UCM/img0.jpg", "UCM/../../secret.jpg", "C:\\x.jpg"])
def test_absolute_and_escaping_paths_are_rejected(tmp_path, root, image):
    report, rejects, _ = run(tmp_path, [record(0, source=None, image=image)], root)
    assert report["rejected"]["unsafe_path"] == 1
    assert rejects[0]["reason"] == "unsafe_path" and repr(image) in rejects[0]["detail"]


def test_every_record_is_accounted_for(tmp_path, root):
    records = [record(i % 6) for i in range(12)] + ["x", record(20, image="missing.jpg")]
    report, rejects, out = run(tmp_path, records, root)
    assert report["read"] == len(records) == report["kept"] + report["rejected_total"]
    assert len(rejects) == report["rejected_total"] and len(corrected(out)) == report["kept"]
    assert sum(counts["read"] for counts in report["per_source"].values()) == report["read"]


@pytest.mark.parametrize("damage", ["truncate", "bad_utf8"])
def test_unreadable_list_is_an_error_and_leaves_no_output(tmp_path, root, damage):
    raw = write_list(tmp_path / "raw.json", [record(i % 6) for i in range(20)])
    data = raw.read_bytes()
    raw.write_bytes(data[:-40] if damage == "truncate" else data[:300] + b"\xc3\x28" + data[302:])
    before = files_under(tmp_path)
    with pytest.raises(DataError, match=rf"raw.json: byte \d+, record \d+: "):
        correct_list(raw, root, "exists", tmp_path / "out")
    assert files_under(tmp_path) == before  # no output, no temporary file


def test_a_stale_report_is_removed_before_a_failing_rerun(tmp_path, root):
    _, _, out = run(tmp_path, [record(0)], root)
    (tmp_path / "raw.json").write_text("[{")
    with pytest.raises(DataError):
        correct_list(tmp_path / "raw.json", root, "exists", out)
    assert not (out / "report.json").exists()


def test_arrow_rows_point_at_the_json_texts(tmp_path, root):
    _, _, out = run(tmp_path, [record(i) for i in range(5)], root)
    text = (out / "corrected.json").read_bytes()
    with pa.memory_map(str(out / "corrected.arrow")) as mapped:
        rows = pa.ipc.open_file(mapped).read_all().to_pylist()
    for row, expected in zip(rows, corrected(out)):
        assert json.loads(text[row["offset"]:row["offset"] + row["length"]]) == expected
        assert row["images"] == [expected["image"]] and row["source"] == "UCM"


def test_worker_processes_give_the_same_outputs_as_one_process(tmp_path, root):
    records = [record(i % 6, conversations=[human(f"<image>\n{i} , {{\"id\": \"x\"}}"), gpt("a")]) for i in range(300)]
    records[50:50] = [7, {**records[10], "id": "copy"}, "bad", record(2, image="missing.jpg")]  # rejects, a duplicate
    raw = write_list(tmp_path / "raw.json", records)
    single = correct_list(raw, root, "exists", tmp_path / "one", workers=1)
    parallel = correct_list(raw, root, "exists", tmp_path / "many", workers=2, segment_bytes=700)
    assert single == parallel
    for name in ("corrected.json", "rejects.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name
    tables = []
    for folder in ("one", "many"):
        with pa.memory_map(str(tmp_path / folder / "corrected.arrow")) as mapped:
            tables.append(pa.ipc.open_file(mapped).read_all())
    assert tables[0].equals(tables[1].combine_chunks().cast(tables[0].schema))
    assert tables[1].num_rows == single["kept"]
    assert single["rejected"]["duplicate"] == 1 and single["rejected"]["bad_json_type"] == 2


def test_workers_report_the_global_record_index_of_a_syntax_error(tmp_path, root):
    records = [record(i % 6, conversations=[human("<image>\nq"), gpt(f"q{i}")]) for i in range(100)]
    text = json.dumps(records).replace('"q70"', '"q70" oops')
    (tmp_path / "raw.json").write_text(text)
    with pytest.raises(DataError, match=r"record 70: invalid or truncated JSON"):
        correct_list(tmp_path / "raw.json", root, "exists", tmp_path / "out", workers=2, segment_bytes=500)


def test_a_two_image_record_keeps_its_images_in_order_through_the_manifest(tmp_path, root):
    """A bi-temporal record (``image``: [before, after], one ``<image>`` each) keeps both images, in order, from the
    raw list to the training manifest; the swapped pair is a different record, not a duplicate."""
    from tinyrs.data.manifest import open_manifest
    from tinyrs.data.oversample import oversample
    from tinyrs.data.validate import validate_list

    pair = [human("<image>\n<image>\nWhat changed between the two images?"), gpt("a new building")]
    records = [record(0, image=["img3.jpg", "img1.jpg"], conversations=pair),
               record(1, image=["img1.jpg", "img3.jpg"], conversations=pair),
               record(2, image=["img1.jpg", "img3.jpg"], conversations=[pair[0], gpt("a new road")]),
               record(3, image=["img1.jpg", "img2.jpg"])]             # one <image> tag for two images: rejected
    report, rejects, out = run(tmp_path, records, root)
    assert [item["image"] for item in corrected(out)] == [["UCM/img3.jpg", "UCM/img1.jpg"],
                                                         ["UCM/img1.jpg", "UCM/img3.jpg"],
                                                         ["UCM/img1.jpg", "UCM/img3.jpg"]]
    assert [(reject["index"], reject["reason"]) for reject in rejects] == [(3, "image_tag_mismatch")]
    assert list(validate_list(out / "corrected.json", root)) == []
    oversample(out, None, 0, tmp_path / "list")
    manifest = open_manifest(tmp_path / "list" / "manifest.parquet")
    pairs = sorted(tuple(Path(image).relative_to(root).as_posix() for image in manifest[i]["images"])
                   for i in range(len(manifest)))
    assert pairs == [("UCM/img1.jpg", "UCM/img3.jpg"), ("UCM/img1.jpg", "UCM/img3.jpg"),
                     ("UCM/img3.jpg", "UCM/img1.jpg")]
