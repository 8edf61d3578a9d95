"""File helpers shared by every stage: atomic writes, the one JSONL reader, hashing, completion manifests.

Every file a stage produces is written to a temporary name beside its target and renamed
into place, so a killed job never leaves a half-written file that looks complete.
A model directory is complete only when its manifest (written last) exists.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from tinyrs.paths import MODEL_MANIFEST as MANIFEST_NAME  # the stages import the name from here

_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """Bad input data. The message names the file, the record index and the field."""


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; shared cluster outputs follow the umask
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> None:
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump(obj, handle, indent=indent, ensure_ascii=False)
        handle.write("\n")


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """Write ``text`` unless the file already holds it; keeps mtimes stable for Snakemake."""
    target = Path(path)
    if target.exists() and target.read_text(encoding="utf-8") == text:
        return False
    with atomic_open(target, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def append_jsonl(handle: IO[str], record: dict) -> None:
    """Append one record and flush, so a killed job keeps every finished line."""
    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    handle.flush()


@dataclass
class JsonlContents:
    """What ``scan_jsonl`` read: the records (after ``convert``), in file order, and what it left out."""

    records: list = field(default_factory=list)
    skipped_bad_lines: int = 0
    ends_unterminated: bool = False   # the last line has no newline (a writer that appends must add one first)


def _say(message: str) -> None:
    print(f"tinyrs: {message}", file=sys.stderr, flush=True)


def _parse_line(raw: bytes, where: str) -> dict:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{where}: not valid UTF-8 (byte {err.start}): {err.reason}") from None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON: {err}") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


def scan_jsonl(
    path: str | os.PathLike,
    *,
    skip_bad_lines: bool = False,
    drop_torn_tail: bool = False,
    unique_field: str | None = "index",
    convert: Callable[[dict, str], Any] | None = None,
) -> JsonlContents:
    """Read a JSONL file of objects, one per line; every line that is not one is named ``<path>: line <n>``.

    A bad line (invalid UTF-8, not JSON, not an object, or refused by ``convert(record, where)`` with a
    DataError) stops the reading, or with ``skip_bad_lines`` is counted and reported on stderr. Blank lines
    hold nothing and are passed over. Two lines with the same ``unique_field`` value are always an error:
    which of them is right cannot be told. ``drop_torn_tail`` is for a file a killed writer may have left
    behind (resuming): an unreadable last line without its newline is dropped, and said; everywhere else
    such a line is a bad line like any other.
    """
    contents = JsonlContents()
    first_seen: dict[str, int] = {}
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}: line {number}"
            unterminated = not raw.endswith(b"\n")
            contents.ends_unterminated = unterminated
            try:
                record = _parse_line(raw, where)
            except DataError as err:
                if drop_torn_tail and unterminated:
                    _say(f"dropped the unfinished last line (its writer was stopped): {err}")
                    continue
                _bad_line(err, skip_bad_lines, contents)
                continue
            if unique_field is not None and unique_field in record:
                _check_unique(record[unique_field], unique_field, number, where, first_seen)
            try:
                item = convert(record, where) if convert else record
            except DataError as err:
                _bad_line(err, skip_bad_lines, contents)
                continue
            contents.records.append(item)
    return contents


def _bad_line(err: DataError, skip_bad_lines: bool, contents: JsonlContents) -> None:
    if not skip_bad_lines:
        raise err
    contents.skipped_bad_lines += 1
    _say(f"skipped {err}")


def _check_unique(value: Any, name: str, number: int, where: str, first_seen: dict[str, int]) -> None:
    key = json.dumps(value, sort_keys=True)
    if key in first_seen:
        raise DataError(f"{where}: {name} {key} repeats line {first_seen[key]}")
    first_seen[key] = number


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every record of a JSONL file; any bad line or repeated ``index`` is a DataError naming the line."""
    return scan_jsonl(path).records


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def write_manifest(directory: str | os.PathLike, **fields: Any) -> Path:
    """Mark ``directory`` complete. Call this last: its presence is the Snakemake target."""
    path = Path(directory) / MANIFEST_NAME
    write_json(path, fields)
    return path


def read_manifest(directory: str | os.PathLike) -> dict:
    path = Path(directory) / MANIFEST_NAME
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a complete tinyrs output: {MANIFEST_NAME} is missing")
    return read_json(path)


def model_dir_of(manifest_path: str | os.PathLike) -> Path:
    """Snakemake passes manifest files around; stages need the directory that holds them."""
    path = Path(manifest_path)
    return path.parent if path.name == MANIFEST_NAME else path
