"""tinyrs data validate: every problem named by file, record and field; exit 1 when there are any."""
from __future__ import annotations

import io

import pytest
from data_fixtures import gpt, human, make_image_root, write_list

from tinyrs.cli import main
from tinyrs.data.validate import run_validate, validate_list

TAGS = ("reasoning", "answer")


def good(number: int, image: str = "UCM/img0.jpg") -> dict:
    return {"id": number, "image": image, "conversations": [human("<image>\n{CLS}What is it?"), gpt("forest")]}


def grounding(answer: str) -> dict:
    return {"image": "UCM/img0.jpg", "conversations": [human("<image>\n{VG}Where is the tank?"), gpt(answer)]}


def problems(tmp_path, records, **kwargs) -> list[str]:
    path = write_list(tmp_path / "list.json", records)
    return [message for _, message in validate_list(path, **kwargs)]


def test_a_clean_list_has_no_problems_and_exits_0(tmp_path):
    root = make_image_root(tmp_path / "images", {"UCM": 1})
    path = write_list(tmp_path / "list.json", [good(0), grounding("[[10, 20, 300, 400]]")])
    out = io.StringIO()
    assert run_validate(path, root, None, 10, out) == 0
    assert out.getvalue() == f"{path}: no problems\n"


def test_structure_problems_name_file_record_and_field(tmp_path):
    records = [good(0), {"image": "UCM/a.jpg"}, {**good(2), "conversations": [human("<image>\nq")]},
               {**good(3), "conversations": [gpt("a"), human("<image>")]}, [1]]
    path = tmp_path / "list.json"
    assert problems(tmp_path, records) == [
        f"{path}: record 1: conversations: field is missing",
        f"{path}: record 2: conversations: expected human/gpt pairs, got 1 turns",
        f"{path}: record 3: conversations[0].from: expected 'human', got 'gpt'",
        f"{path}: record 4: expected a JSON object, got a list",
    ]


def test_image_tag_count_must_equal_image_count(tmp_path):
    records = [{**good(0), "conversations": [human("no tag"), gpt("a")]},
               {**good(1), "image": ["UCM/a.jpg", "UCM/b.jpg"]}]
    found = problems(tmp_path, records)
    assert found == [
        f"{tmp_path / 'list.json'}: record 0: conversations: 0 <image> tags in human turns for 1 images",
        f"{tmp_path / 'list.json'}: record 1: conversations: 1 <image> tags in human turns for 2 images",
    ]


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("[[10, 20, 1300, 400]]", "leaves the 0-1000 grid"),
        ("[[300, 20, 100, 400]]", "needs x1 < x2 and y1 < y2"),
        ("[[10, 400, 300, 400]]", "needs x1 < x2 and y1 < y2"),
        ("the tank is on the left", "no box in the answer of a {VG} record"),
    ],
)
def test_grounding_boxes_are_checked(tmp_path, answer, message):
    found = problems(tmp_path, [grounding("[[1, 2, 3, 4]]"), grounding(answer)])
    assert len(found) == 1 and found[0].startswith(f"{tmp_path / 'list.json'}: record 1: conversations[1].value: ")
    assert message in found[0]


def test_reasoning_format_when_asked(tmp_path):
    records = [
        {**good(0), "conversations": [human("<image>\nq"), gpt("<reasoning>green</reasoning>\n<answer>x</answer>")]},
        {**good(1), "conversations": [human("<image>\nq"), gpt("forest")]},
        {**good(2), "conversations": [human("<image>\nq"), gpt("<answer>x</answer><reasoning>y</reasoning>")]},
        {**good(3), "conversations": [human("<image>\nq"), gpt("<reasoning>a</reasoning><answer>b</answer> extra")]},
    ]
    assert problems(tmp_path, records) == []
    found = problems(tmp_path, records, tags=TAGS)
    assert [message.split(": ")[1] for message in found] == ["record 1", "record 2", "record 3"]
    assert all("conversations[1].value: expected exactly <reasoning>" in message for message in found)


def test_boxes_are_read_inside_the_answer_block(tmp_path):
    answer = "<reasoning>near [[0, 0, 2000, 5]]</reasoning><answer>[[10, 20, 30, 40]]</answer>"
    assert problems(tmp_path, [grounding(answer)], tags=TAGS) == []


def test_images_are_checked_under_the_root(tmp_path):
    root = make_image_root(tmp_path / "images", {"UCM": 1})
    records = [good(0), good(1, "UCM/missing.jpg"), good(2, "../UCM/img0.jpg"), {**good(3), "image": ["/abs.jpg"]}]
    found = problems(tmp_path, records, image_root=root)
    assert [message.split(": ", 1)[1] for message in found] == [
        f"record 1: image: 'UCM/missing.jpg' not found under {root}",
        "record 2: image: '../UCM/img0.jpg' is absolute or leaves the image root",
        "record 3: image[0]: '/abs.jpg' is absolute or leaves the image root",
    ]


def test_unreadable_list_is_one_problem(tmp_path):
    path = tmp_path / "list.json"
    path.write_text('[{"image": "a.jpg", "conversations": []}, {"ima')
    found = list(validate_list(path))
    assert found[-1][0] == "unreadable" and "record 1: " in found[-1][1] and "truncated" in found[-1][1]


def test_cli_prints_at_most_max_errors_and_a_summary(tmp_path, capsys):
    records = [{**good(i), "conversations": []} for i in range(5)] + [grounding("none")]
    path = write_list(tmp_path / "list.json", records)
    argv = ["data", "validate", "--list", str(path), "--max-errors", "2", "--reasoning-tags", "reasoning,answer"]
    assert main(argv) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[-1] == f"{path}: 7 problems (bad_box: 1, bad_reasoning_format: 1, odd_turns: 5, 5 not shown)"
