"""Small raw VHM lists, image roots and GRPO datasets for the data-stage and GRPO tests."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from PIL import Image


def human(text: str) -> dict:
    return {"from": "human", "value": text}


def gpt(text: str) -> dict:
    return {"from": "gpt", "value": text}


def record(number: int, source: str | None = "UCM", image: str | list | None = None, **fields) -> dict:
    """A valid raw record (bare image name + source_dataset, like upstream VHM) unless fields say otherwise."""
    raw = {"id": f"r{number}"}
    if source is not None:
        raw["source_dataset"] = source
    raw["image"] = image if image is not None else f"img{number}.jpg"
    raw["conversations"] = [human(f"<image>\n{{CLS}}What is in image {number}?"), gpt(f"class {number}")]
    raw.update(fields)
    return raw


def write_list(path: Path, records: list, indent: int | None = None) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def make_image_root(root: Path, folders: dict[str, int]) -> Path:
    """``folders``: sub-folder -> number of images ``img0.jpg`` ... (tiny valid JPEGs)."""
    for folder, count in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            Image.new("RGB", (4, 4), (number * 20 % 255, 0, 0)).save(root / folder / f"img{number}.jpg")
    return root


def files_under(path: Path) -> set[str]:
    """Every file below ``path`` (relative), to prove a command wrote nothing else."""
    return {str(item.relative_to(path)) for item in path.rglob("*") if item.is_file()}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def shard(path: Path, members: dict[str, bytes], kind: bytes = tarfile.REGTYPE) -> Path:
    """A webdataset-like ``.tar`` holding ``members`` (name -> bytes); ``kind=SYMTYPE`` makes them links."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            if kind == tarfile.SYMTYPE:
                info.linkname, info.size = "/etc/passwd", 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return path


def encoded(picture: Image.Image) -> dict:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def two_image_row(before, after, placeholders: int = 2, solution: list | None = None) -> dict:
    """A bi-temporal row: an ``images`` list (before, after) and one image item per image in its prompt."""
    content = [{"type": "image", "text": None}] * placeholders + [{"type": "text", "text": "What changed?"}]
    return {"prompt": [{"role": "user", "content": content}], "images": [before, after],
            "solution": ["2", "[[10, 10, 40, 40]]", "What changed?"] if solution is None else solution}


def write_two_image_dataset(path: Path, rows: list[dict]) -> str:
    from datasets import Dataset, DatasetDict, Features, Image as ImageFeature, List, Value

    features = Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(ImageFeature()),
        "solution": List(Value("string")),
    })
    columns = {name: [r[name] for r in rows] for name in features}
    DatasetDict({"train": Dataset.from_dict(columns, features=features)}).save_to_disk(str(path))
    return str(path)
