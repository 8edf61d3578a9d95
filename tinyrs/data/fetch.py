"""``tinyrs data fetch``: bring one Hub dataset repository (or its local mirror) into a directory.

From the Hub: ``huggingface_hub.snapshot_download`` into the directory itself (it skips files it already
has, so an interrupted fetch resumes). From a mirror (air-gapped clusters, the demo world): files of
``<mirror>/<repo name>/`` are hard-linked (copied across file systems). Both honour the same allow
patterns, matched like the Hub does: ``fnmatch`` on repo-relative posix paths, where ``*`` (and so
``**``) also matches ``/``, and a pattern ending in ``/`` means everything below that folder.

Only regular files are taken from a mirror: links (to files or folders) and other special entries are
never followed, linked or copied; they are counted and named in ``.complete`` (``skipped``). Hard links
into the mirror must never be written through, so nothing is ever written into an existing file here:
it is replaced (a new file renamed over it).

With ``unpack_shards``, every webdataset ``.tar`` shard in a sub-folder is unpacked beside itself.
Members must be regular files with a relative path without ``..``, reach no link leading out of the
shard's folder (tarfile's ``data_filter`` resolves the path on disk), and replace neither a link nor a
fetched file (the shard itself, say). ``.complete`` (repo, revision, patterns, file count and bytes) is written
last; a rerun with the same request finds it and does nothing.
"""
from __future__ import annotations

import os
import shutil
import tarfile
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Iterator, NamedTuple

from tinyrs.io import DataError, atomic_open, read_json, write_json
from tinyrs.paths import FETCHED as COMPLETE

UNPACKED = ".unpacked"  # one marker per unpacked shard, so a rerun after a crash skips finished shards
COPY_CHUNK = 16 << 20
SKIPPED_EXAMPLES = 10  # skipped mirror entries named in .complete


class FetchError(RuntimeError):
    """The dataset could not be fetched (Hub unreachable, mirror missing, nothing matched)."""


def matches(path: str, patterns: list[str]) -> bool:
    """Whether a repo-relative posix path is selected by any allow pattern (Hub semantics)."""
    return any(fnmatchcase(path, pattern + "*" if pattern.endswith("/") else pattern) for pattern in patterns)


def _visible_entries(root: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """``(relative posix path, entry)`` of everything under ``root`` but folders, skipping hidden names
    (.cache, markers). Links are listed, never followed: a linked folder is not entered."""
    stack = [("", str(root))]
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in sorted(entries, key=lambda item: item.name):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((prefix + entry.name + "/", entry.path))
                else:
                    yield prefix + entry.name, entry


def _visible_files(root: Path) -> Iterator[tuple[str, os.DirEntry]]:
    """The regular files of ``_visible_entries``."""
    return ((relative, entry) for relative, entry in _visible_entries(root) if entry.is_file(follow_symlinks=False))


def _place(source: os.DirEntry, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (copy when linking fails); skip a target that is already it."""
    if target.exists():
        have, want = target.stat(), source.stat()
        if (have.st_dev, have.st_ino) == (want.st_dev, want.st_ino) or (
            have.st_size == want.st_size and have.st_mtime >= want.st_mtime
        ):
            return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.link")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source.path, temporary, follow_symlinks=False)
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        with open(source.path, "rb") as reader, atomic_open(target, "wb") as writer:
            shutil.copyfileobj(reader, writer, COPY_CHUNK)


class Placed(NamedTuple):
    """What a fetch put into its folder: the files (relative posix paths), and the mirror entries it skipped."""

    files: list[str]
    skipped: list[str]


def copy_from_mirror(mirror: str | os.PathLike, repo: str, patterns: list[str], out_dir: Path) -> Placed:
    """Link the regular files of ``<mirror>/<repo name>/`` matching ``patterns`` into ``out_dir``."""
    source = Path(mirror) / repo.split("/")[-1]
    if not source.is_dir():
        raise FetchError(f"mirror folder {source} does not exist (expected <mirror>/<repo name> for {repo})")
    placed = Placed([], [])
    for relative, entry in _visible_entries(source):
        if not entry.is_file(follow_symlinks=False):
            placed.skipped.append(relative)
        elif matches(relative, patterns):
            _place(entry, out_dir / relative)
            placed.files.append(relative)
    if not placed.files:
        raise FetchError(f"no file under {source} matches the allow patterns {patterns}")
    return placed


def download_from_hub(repo: str, revision: str, patterns: list[str], out_dir: Path) -> Placed:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    try:
        snapshot_download(
            repo_id=repo, repo_type="dataset", revision=revision, allow_patterns=patterns, local_dir=out_dir
        )
    except (OSError, HfHubHTTPError) as err:
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") else ""
        raise FetchError(
            f"cannot download dataset {repo}@{revision} from the Hugging Face Hub{offline}: "
            f"{type(err).__name__}: {str(err).splitlines()[0]} -- check the network and token, "
            f"or point hub.mirror (--mirror) at a local copy laid out as <mirror>/{repo.split('/')[-1]}/"
        ) from err
    return Placed([relative for relative, _ in _visible_files(out_dir) if matches(relative, patterns)], [])


def unpack_shard(shard: Path, destination: Path, fetched: frozenset[Path]) -> int:
    """Stream the members of a webdataset ``.tar`` into ``destination``; returns the member count.

    ``fetched``: files a member may not replace. A shard counts as unpacked only once its marker exists,
    so a crash mid-shard makes the next run unpack it again.
    """
    count = 0
    try:
        with tarfile.open(shard, "r|*") as archive:
            for member in archive:
                target = _member_target(member, shard, destination, fetched)
                if target is not None:
                    _write_member(archive, member, target, shard)
                    count += 1
    except tarfile.TarError as err:
        raise DataError(f"{shard}: not a readable tar archive: {err}") from None
    return count


def _member_target(member: tarfile.TarInfo, shard: Path, destination: Path, fetched: frozenset[Path]) -> Path | None:
    """Where a member goes (None for a folder); ``DataError`` naming shard and member when it is refused."""
    name = member.name
    if name.startswith("/") or ".." in name.split("/"):
        raise DataError(f"{shard}: member {name!r} is absolute or leaves {destination}")
    if not (member.isfile() or member.isdir()):
        raise DataError(f"{shard}: member {name!r} is not a regular file (links and devices are refused)")
    try:
        tarfile.data_filter(member, str(destination))  # resolves the links already on disk along the path
    except tarfile.FilterError as err:
        raise DataError(f"{shard}: member {name!r} is refused: {err}") from None
    if member.isdir():
        return None
    target = destination / name
    if target in fetched:
        raise DataError(f"{shard}: member {name!r} would replace the fetched file {target}")
    if target.is_symlink() or (target.exists() and not target.is_file()):
        raise DataError(f"{shard}: member {name!r} would replace {target}, which is not a regular file")
    return target


def _write_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path, shard: Path) -> None:
    """Write a new file beside ``target`` and rename it over ``target``: an existing file (a hard link into
    the mirror, say) is replaced, never written into."""
    temporary = target.with_name(f".{target.name}.unpacking")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        with open(temporary, "xb") as writer:
            shutil.copyfileobj(archive.extractfile(member), writer, COPY_CHUNK)
        os.replace(temporary, target)
    except OSError as err:
        raise DataError(f"{shard}: member {member.name!r} cannot be written to {target}: {err}") from None


def unpack_shards(out_dir: Path, fetched: list[str]) -> int:
    """Unpack every ``<sub>/....tar`` among the ``fetched`` files not unpacked before; returns the member count."""
    members = 0
    protected = frozenset(out_dir / relative for relative in fetched)
    for relative in sorted(relative for relative in fetched if relative.endswith(".tar") and "/" in relative):
        marker = out_dir / UNPACKED / f"{relative}.done"
        if marker.exists():
            continue
        shard = out_dir / relative
        members += unpack_shard(shard, shard.parent, protected)
        write_json(marker, {"shard": relative})
    return members


def _request(dataset: str, repo: str, revision: str, patterns: list[str], unpack: bool) -> dict:
    return {
        "dataset": dataset, "repo": repo, "revision": revision,
        "allow_patterns": list(patterns), "unpack_shards": unpack,
    }


def fetch_dataset(
    dataset: str, repo: str, revision: str, patterns: list[str], out_dir: str | os.PathLike,
    mirror: str | os.PathLike | None = None, unpack: bool = False,
) -> dict:
    """Fetch (and unpack) a dataset into ``out_dir``; returns the ``.complete`` record."""
    out_dir = Path(out_dir)
    request = _request(dataset, repo, revision, patterns, unpack)
    complete = out_dir / COMPLETE
    if complete.exists():
        done = read_json(complete)
        if {key: done.get(key) for key in request} == request:
            return done
        complete.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        placed = copy_from_mirror(mirror, repo, patterns, out_dir)
    else:
        placed = download_from_hub(repo, revision, patterns, out_dir)
    if unpack:
        unpack_shards(out_dir, placed.files)
    files = bytes_total = 0
    for _, entry in _visible_files(out_dir):
        files += 1
        bytes_total += entry.stat().st_size
    record = {**request, "source": f"mirror {Path(mirror).absolute()}" if mirror is not None else "hub",
              "files": files, "bytes": bytes_total,
              "skipped": len(placed.skipped), "skipped_examples": placed.skipped[:SKIPPED_EXAMPLES]}
    write_json(complete, record)
    return record
