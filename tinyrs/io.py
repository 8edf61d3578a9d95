"""File helpers shared by every stage: atomic writes, hashing, completion manifests.

Every file a stage produces is written to a temporary name beside its target and renamed
into place, so a killed job never leaves a half-written file that looks complete.
A model directory is complete only when its manifest (written last) exists.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

MANIFEST_NAME = "tinyrs_manifest.json"
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


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a torn last line (killed writer) is ignored, any other bad line is an error."""
    records: list[dict] = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise ValueError(f"{path}: line {number} is not valid JSON: {err}") from err
    return records


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
