"""Regression cases of the data stages (issue 12, a security review of the demo world): one test per failure,
each on the input that showed it.

Bad input the data stages already handled, tested elsewhere and not repeated here: truncated JSON and invalid
UTF-8 (test_data_correct.py::test_unreadable_list_is_an_error_and_leaves_no_output,
test_data_stream.py::test_truncated_file_names_file_byte_and_record), not an array, trailing garbage and
trailing commas (test_data_stream.py::test_malformed_arrays_are_errors), `..` and absolute image paths
(test_data_correct.py::test_absolute_and_escaping_paths_are_rejected,
test_data_validate.py::test_images_are_checked_under_the_root), odd turns
(test_data_correct.py::test_odd_turn_counts_and_bad_roles_are_rejected), duplicates
(test_data_correct.py::test_duplicates_are_rejected_after_the_first), `..`, absolute and link members of a
shard (test_data_fetch.py::test_unsafe_shard_members_are_refused). Here they go through the command line
once more only where it was not (UTF-16, not an array, trailing garbage).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from data_fixtures import files_under, gpt, human, make_image_root, read_jsonl, record, shard, write_list

from tinyrs.cli import main
from tinyrs.data.correct import correct_list
from tinyrs.data.validate import validate_list

VERSAD = ["data", "fetch", "--dataset", "versad", "--repo", "aybora/VHM_VersaD", "--unpack-shards"]


def fetch(mirror: Path, out: Path, *patterns: str) -> int:
    patterns = patterns or ("list_pretrain.json", "*/*.tar")
    return main([*VERSAD, *(arg for pattern in patterns for arg in ("--allow-pattern", pattern)),
                 "--mirror", str(mirror), "--out", str(out)])


@pytest.fixture()
def mirror(tmp_path) -> Path:
    """A VHM_VersaD mirror with one shard, and a file outside it that nothing may touch."""
    repo = tmp_path / "mirror" / "VHM_VersaD"
    repo.mkdir(parents=True)
    (repo / "list_pretrain.json").write_text("[]")
    shard(repo / "loveda" / "loveda-000000.tar", {"a.jpg": b"jpeg-a"})
    (tmp_path / "victim.txt").write_text("precious")
    return tmp_path / "mirror"


def correct(raw: Path, root: Path, out: Path, *options: str) -> int:
    return main(["data", "correct", "--list", str(raw), "--image-root", str(root), "--check", "exists",
                 "--out-dir", str(out), "--workers", "1", *options])


@pytest.fixture()
def root(tmp_path) -> Path:
    return make_image_root(tmp_path / "images", {"UCM": 2})


# 1. Unpacking shards wrote through links.

def test_a_shard_member_does_not_write_through_a_link_in_the_mirror(mirror, tmp_path, capsys):
    repo = mirror / "VHM_VersaD"
    (repo / "loveda" / "link.jpg").symlink_to(tmp_path / "victim.txt")
    shard(repo / "loveda" / "loveda-000001.tar", {"link.jpg": b"overwritten"})
    out = tmp_path / "out"
    assert fetch(mirror, out) == 0
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert (out / "loveda" / "link.jpg").read_bytes() == b"overwritten"
    assert not (out / "loveda" / "link.jpg").is_symlink()
    complete = json.loads((out / ".complete").read_text())
    assert (complete["skipped"], complete["skipped_examples"]) == (1, ["loveda/link.jpg"])
    assert "1 entry of the mirror skipped" in capsys.readouterr().err


def test_a_member_named_like_its_shard_leaves_the_mirror_intact(mirror, tmp_path, capsys):
    tar = mirror / "VHM_VersaD" / "loveda" / "loveda-000001.tar"
    shard(tar, {"loveda-000001.tar": b"not a tar any more"})
    before = tar.read_bytes()
    out = tmp_path / "out"
    assert fetch(mirror, out) == 2
    err = capsys.readouterr().err
    assert "loveda-000001.tar: member 'loveda-000001.tar'" in err and "fetched file" in err
    assert tar.read_bytes() == before
    assert not (out / ".complete").exists()


def test_a_linked_folder_in_the_mirror_pulls_nothing_from_outside(mirror, tmp_path):
    outside = tmp_path / "elsewhere"
    shard(outside / "elsewhere-000000.tar", {"x.jpg": b"outside"})
    (outside / "secret.txt").write_text("secret")
    (mirror / "VHM_VersaD" / "elsewhere").symlink_to(outside)
    out = tmp_path / "out"
    assert fetch(mirror, out, "list_pretrain.json", "*/*.tar", "*/**") == 0
    assert not (out / "elsewhere").exists()
    assert json.loads((out / ".complete").read_text())["skipped_examples"] == ["elsewhere"]
    assert files_under(outside) == {"elsewhere-000000.tar", "secret.txt"}


def test_unpacking_replaces_a_hard_linked_file_instead_of_writing_into_it(mirror, tmp_path):
    """An output left by the old fetch, which hard-linked the targets of the mirror's links."""
    out = tmp_path / "out"
    (out / "loveda").mkdir(parents=True)
    os.link(tmp_path / "victim.txt", out / "loveda" / "a.jpg")
    assert fetch(mirror, out) == 0
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert (out / "loveda" / "a.jpg").read_bytes() == b"jpeg-a"


def test_unpacking_refuses_to_follow_a_link_in_the_output(mirror, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "loveda").mkdir(parents=True)
    (out / "loveda" / "a.jpg").symlink_to(tmp_path / "victim.txt")
    assert fetch(mirror, out) == 2
    assert "loveda-000000.tar: member 'a.jpg'" in capsys.readouterr().err
    assert (tmp_path / "victim.txt").read_text() == "precious"
    assert not (out / ".complete").exists()
