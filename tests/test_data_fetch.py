"""tinyrs data fetch: allow patterns, mirror links, shard unpacking, .complete, the Hub path offline."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from data_fixtures import shard

from tinyrs.cli import main
from tinyrs.data.fetch import COMPLETE, FetchError, fetch_dataset, matches
from tinyrs.io import DataError

PATTERNS = ["list_pretrain.json", "*/*.tar"]


@pytest.fixture()
def mirror(tmp_path) -> Path:
    repo = tmp_path / "mirror" / "VHM_VersaD"
    repo.mkdir(parents=True)
    (repo / "list_pretrain.json").write_text("[]")
    (repo / "README.md").write_text("not selected")
    shard(repo / "loveda" / "loveda-000000.tar", {"a.jpg": b"jpeg-a", "a.json": b"{}"})
    shard(repo / "loveda" / "loveda-000001.tar", {"b.jpg": b"jpeg-b"})
    shard(repo / "crowdai" / "crowdai-000000.tar", {"c.jpg": b"jpeg-c"})
    return tmp_path / "mirror"


def fetch(mirror: Path, out: Path, patterns=PATTERNS, unpack=True) -> dict:
    return fetch_dataset("versad", "aybora/VHM_VersaD", "main", patterns, out, mirror=mirror, unpack=unpack)


def test_patterns_match_like_the_hub():
    assert matches("loveda/x.tar", ["*/*.tar"]) and matches("a/b/c.tar", ["*/*.tar"])
    assert matches("UCM/sub/x.jpg", ["*/**"]) and not matches("list.json", ["*/**"])
    assert matches("UCM/x.jpg", ["UCM/"]) and not matches("UCMX/x.jpg", ["UCM/"])
    assert not matches("list_sft.json", ["list_pretrain*.json"])


def test_mirror_fetch_links_selected_files_and_unpacks_shards(mirror, tmp_path):
    out = tmp_path / "hub" / "versad"
    record = fetch(mirror, out)
    assert (out / "loveda" / "a.jpg").read_bytes() == b"jpeg-a"
    assert (out / "loveda" / "a.json").exists() and (out / "loveda" / "b.jpg").exists()
    assert (out / "crowdai" / "c.jpg").read_bytes() == b"jpeg-c"
    assert not (out / "README.md").exists()
    source = mirror / "VHM_VersaD" / "list_pretrain.json"
    assert (out / "list_pretrain.json").stat().st_ino == source.stat().st_ino  # a hard link, not a copy
    visible = [
        path for path in out.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(out).parts)
    ]
    assert record["files"] == len(visible) == 8
    assert record["bytes"] == sum(path.stat().st_size for path in visible)
    assert json.loads((out / COMPLETE).read_text()) == record
    assert (record["repo"], record["revision"], record["allow_patterns"]) == ("aybora/VHM_VersaD", "main", PATTERNS)


def test_rerun_with_the_same_request_does_nothing(mirror, tmp_path):
    out = tmp_path / "out"
    first = fetch(mirror, out)
    (out / "loveda" / "a.jpg").unlink()
    assert fetch(mirror, out) == first
    assert not (out / "loveda" / "a.jpg").exists()


def test_a_different_request_fetches_again(mirror, tmp_path):
    out = tmp_path / "out"
    fetch(mirror, out, patterns=["list_pretrain.json"], unpack=False)
    assert not (out / "loveda").exists()
    record = fetch(mirror, out)
    assert (out / "loveda" / "a.jpg").exists() and record["allow_patterns"] == PATTERNS


def test_an_interrupted_unpack_resumes_with_the_unfinished_shards(mirror, tmp_path):
    out = tmp_path / "out"
    fetch(mirror, out)
    (out / COMPLETE).unlink()
    (out / ".unpacked" / "loveda" / "loveda-000001.tar.done").unlink()
    (out / "loveda" / "a.jpg").unlink()
    (out / "loveda" / "b.jpg").unlink()
    fetch(mirror, out)
    assert (out / "loveda" / "b.jpg").exists() and not (out / "loveda" / "a.jpg").exists()


@pytest.mark.parametrize(
    ("members", "kind", "message"),
    [
        ({"../escape.jpg": b"x"}, tarfile.REGTYPE, "is absolute or leaves"),
        ({"/etc/evil.jpg": b"x"}, tarfile.REGTYPE, "is absolute or leaves"),
        ({"link.jpg": b""}, tarfile.SYMTYPE, "not a regular file"),
    ],
)
def test_unsafe_shard_members_are_refused(mirror, tmp_path, members, kind, message):
    shard(mirror / "VHM_VersaD" / "loveda" / "loveda-000009.tar", members, kind)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=rf"loveda-000009.tar: member .*{message}"):
        fetch(mirror, out)
    assert not (out / COMPLETE).exists() and not (tmp_path / "escape.jpg").exists()


def test_missing_mirror_and_empty_selection_are_clear_errors(mirror, tmp_path):
    with pytest.raises(FetchError, match="VHM_dataset_sft does not exist"):
        fetch_dataset("sft", "aybora/VHM_dataset_sft", "main", ["**"], tmp_path / "out", mirror=mirror)
    with pytest.raises(FetchError, match="no file under .* matches"):
        fetch(mirror, tmp_path / "out", patterns=["*.parquet"])


def test_without_a_mirror_the_hub_is_used_and_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError) as caught:
        fetch_dataset("versad", "aybora/VHM_VersaD", "main", PATTERNS, tmp_path / "out")
    message = str(caught.value)
    assert "cannot download dataset aybora/VHM_VersaD@main from the Hugging Face Hub (HF_HUB_OFFLINE is set)" in message
    assert "<mirror>/VHM_VersaD/" in message
    assert not (tmp_path / "out" / COMPLETE).exists()


def test_cli_fetch_from_a_mirror(mirror, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    argv = ["data", "fetch", "--dataset", "versad", "--repo", "aybora/VHM_VersaD",
            "--allow-pattern", "list_pretrain.json", "--allow-pattern", "*/*.tar", "--unpack-shards",
            "--mirror", str(mirror), "--out", str(out)]
    assert main(argv) == 0
    assert "versad: 8 files" in capsys.readouterr().out
    assert (out / "crowdai" / "c.jpg").exists()
    assert main(argv[:-4] + ["--out", str(tmp_path / "hub")]) == 2  # no mirror: the (offline) Hub
    assert "cannot download dataset" in capsys.readouterr().err
