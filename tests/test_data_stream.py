"""The streaming JSON-array reader: same elements as json.load, bounded buffers, precise errors."""
from __future__ import annotations

import json

import pytest

from tinyrs.data.stream import ArrayError, ArrayReader, element_start, iter_json_array
from tinyrs.io import DataError

ELEMENTS = [
    {"id": 1, "text": "é, {\"id\": 2} ü", "n": 123456789, "nested": [{"a": [1, 2]}, {}]},
    1.5e10, "plain", None, True, 12345678901234567890, -0.5, [], {"id": "x", "emoji": "🛰️"},
]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
def test_elements_match_json_load_for_any_chunk_size(tmp_path, chunk_bytes, indent):
    path = tmp_path / "list.json"
    path.write_text(json.dumps(ELEMENTS, ensure_ascii=False, indent=indent), encoding="utf-8")
    assert [value for _, value in iter_json_array(path, chunk_bytes)] == ELEMENTS


def test_indices_count_from_zero_and_empty_array_yields_nothing(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[ {\"a\": 1} , {\"b\": 2} ]\n")
    assert [index for index, _ in iter_json_array(path)] == [0, 1]
    path.write_text(" [ ] ")
    assert list(iter_json_array(path)) == []


def test_byte_offsets_point_at_each_element(tmp_path):
    path = tmp_path / "list.json"
    text = '[{"s": "é"},\n {"s": "ü€"},  7]'
    path.write_text(text, encoding="utf-8")
    raw = text.encode("utf-8")
    offsets = [offset for offset, _ in ArrayReader(path).elements()]
    assert [raw[offset:offset + 1] for offset in offsets] == [b"{", b"{", b"7"]


@pytest.mark.parametrize("cut", [1, 30, 57, -1])
def test_truncated_file_names_file_byte_and_record(tmp_path, cut):
    path = tmp_path / "list.json"
    full = json.dumps([{"id": i, "value": "x" * 10} for i in range(3)])
    path.write_text(full[:cut] if cut > 0 else full[:cut])
    with pytest.raises(DataError, match=rf"{path.name}: byte \d+, record \d+: .*truncated"):
        list(iter_json_array(path, chunk_bytes=8))


def test_truncated_error_gives_the_record_being_read(tmp_path):
    path = tmp_path / "list.json"
    full = json.dumps([{"id": i} for i in range(3)])
    path.write_text(full[: full.index('{"id": 2}') + 5])
    with pytest.raises(ArrayError) as caught:
        list(iter_json_array(path))
    assert caught.value.index == 2 and "truncated" in caught.value.what


def test_invalid_utf8_names_the_byte(tmp_path):
    path = tmp_path / "list.json"
    good = json.dumps([{"id": 0}, {"id": 1, "v": "ok"}]).encode()
    bad_at = good.index(b"ok")
    path.write_bytes(good[:bad_at] + b"\xff\xfe" + good[bad_at + 2:])
    with pytest.raises(DataError, match=rf"byte {bad_at}, record \d+: invalid UTF-8"):
        list(iter_json_array(path, chunk_bytes=4))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": 1}', "expected a JSON array"),
        ("", "expected a JSON array starting with '\\[', found end of file"),
        ('[{"id": 1},]', "trailing comma"),
        ('[{"id": 1}] extra', "unexpected data after the closing"),
        ('[{"id": 1} {"id": 2}]', "expected ',' or ']' after record 0"),
        ('[{"id": tru}]', "invalid or truncated JSON"),
    ],
)
def test_malformed_arrays_are_errors(tmp_path, text, message):
    path = tmp_path / "list.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        list(iter_json_array(path))


def test_a_syntax_error_is_reported_without_reading_the_rest(tmp_path):
    path = tmp_path / "list.json"
    tail = ",".join(json.dumps({"id": i, "pad": "x" * 100}) for i in range(2000))
    path.write_text('[{"id": 0, "bad": nope},' + tail + "]")
    reader = ArrayReader(path, chunk_bytes=256)
    with pytest.raises(DataError, match="record 0"):
        list(reader.elements())


def test_segments_with_guessed_starts_join_up_to_the_whole_list(tmp_path):
    """What tinyrs data correct does with worker processes: guess starts, check them, reread on a miss."""
    path = tmp_path / "list.json"
    elements = [{"id": i, "value": 'text , {"id": text' * (i % 3)} for i in range(40)]
    elements[17:17] = [5, ["not", "an", "object"], "x"]  # elements the guess cannot recognise
    path.write_text(json.dumps(elements), encoding="utf-8")
    sync = element_start(path)
    assert sync == '{"id":'
    size = path.stat().st_size
    rereads = 0
    for segment in (13, 97, 400):
        found, expected = [], 0
        for start in range(0, size, segment):
            stop = min(start + segment, size)
            if expected is None or expected >= stop:
                continue
            reader = ArrayReader(path, start, sync=sync if start else None, chunk_bytes=16)
            try:
                values = [value for _, value in reader.elements(stop)]
                good = start == expected == 0 or reader.first_offset == expected
            except ArrayError:
                good = False
            if not good:
                rereads += 1
                reader = ArrayReader(path, expected, chunk_bytes=16)
                values = [value for _, value in reader.elements(stop)]
            found += values
            expected = reader.next_offset
        assert found == elements, segment
    assert rereads > 0  # the non-object elements did fool the guess
