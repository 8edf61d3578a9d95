"""Writing the four Hub repository layouts (docs/design.md, "Hub repository layouts").

Every file goes through ``tinyrs.io`` (temporary name, then rename). Tar shards have fixed member
metadata (mtime, owner, mode) so that the same seed gives byte-identical shards.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import shutil
import tarfile
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tinyrs.data.demo_world import plan
from tinyrs.data.demo_world.content import LHRS_TYPES, QA, Asker, ask_kind
from tinyrs.data.demo_world.scenes import encode_jpeg, resized
from tinyrs.io import atomic_open, write_json

VERSAD, SFT, GRPO, EVAL = "VHM_VersaD", "VHM_dataset_sft", "VHM_dataset_grpo", "scorers_datasets_eval"
REPOS = (VERSAD, SFT, GRPO, EVAL)
TAR_MTIME = 946684800  # 2000-01-01: fixed, so shards do not depend on when they were written


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


@contextlib.contextmanager
def parallel_writes(workers: int = 4) -> Iterator[Callable[[Path, bytes], None]]:
    """Yield ``write(path, data)`` that writes on worker threads, so waiting for the disk (each
    atomic write syncs) overlaps drawing the next image. Every write has finished, or raised, on exit."""
    futures: list[Future] = []
    with ThreadPoolExecutor(workers) as pool:
        yield lambda path, data: futures.append(pool.submit(write_bytes, path, data))
    for future in futures:
        future.result()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with atomic_open(path, "wb") as handle, tarfile.open(fileobj=handle, mode="w",
                                                           format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), TAR_MTIME, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


def human_turn(qa: QA, first: bool) -> str:
    question = f"{qa.prefix} {qa.question}" if qa.prefix else qa.question
    return f"<image>\n{question}" if first else question


def reasoning_answer(qa: QA) -> str:
    return f"<reasoning>{qa.rationale}</reasoning><answer>{qa.answer}</answer>"


def conversations(qas: list[QA], reasoning: bool) -> list[dict]:
    turns = []
    for index, qa in enumerate(qas):
        turns.append({"from": "human", "value": human_turn(qa, first=index == 0)})
        turns.append({"from": "gpt", "value": reasoning_answer(qa) if reasoning else qa.answer})
    return turns


def write_versad(root: Path, scale: plan.Scale, rng: random.Random) -> dict:
    """Raw pretrain list + webdataset shards, with the anomalies the correction step must handle."""
    folders = list(plan.PRETRAIN_SOURCES)
    sizes = plan.allocate(scale.pretrain, list(plan.PRETRAIN_SOURCES.values()))
    total = sum(sizes)
    missing = set(rng.sample(range(total), max(1, round(total * plan.MISSING_IMAGE_SHARE))))
    as_list = set(rng.sample(sorted(set(range(total)) - missing), max(1, round(total * plan.IMAGE_LIST_SHARE))))
    ask = Asker(rng)
    records, shards, number = [], 0, 0
    anomalies: dict[str, list[str]] = {"missing_image": [], "image_list": []}
    for folder, size in zip(folders, sizes):
        samples: list[list[tuple[str, bytes]]] = []  # per image: its .jpg and .json members
        for i in range(size):
            scene, qas = ask_kind(ask, "caption")
            stem = f"{folder}_{i:06d}"
            name = f"{stem}.jpg"
            source = plan.CROWDAI_SPELLINGS[i % 2] if folder == plan.CROWDAI_FOLDER else folder
            if number in missing:
                anomalies["missing_image"].append(stem)
            else:
                meta = {"key": stem, "width": scene.size[0], "height": scene.size[1]}
                samples.append([(name, encode_jpeg(scene.image)),
                                (f"{stem}.json", json.dumps(meta, sort_keys=True).encode())])
            if number in as_list:
                anomalies["image_list"].append(stem)
            records.append({"id": stem, "source_dataset": source, "image": [name] if number in as_list else name,
                            "conversations": conversations(qas, reasoning=False)})
            number += 1
        for shard, start in enumerate(range(0, len(samples), scale.shard_size)):
            members = [member for sample in samples[start:start + scale.shard_size] for member in sample]
            write_tar(root / folder / f"{folder}-{shard:06d}.tar", members)
            shards += 1
    rng.shuffle(records)
    write_json(root / "list_pretrain.json", records)
    by_source = Counter(r["source_dataset"] for r in records)
    return {
        "records": len(records), "images": total - len(missing), "shards": shards,
        "by_folder": dict(zip(folders, sizes)), "by_source_dataset": dict(sorted(by_source.items())),
        "anomalies": {"misspelt_source": by_source.get("corwdAI", 0),
                      "source_case_differs_from_folder": by_source.get("crowdAI", 0),
                      **{key: sorted(ids) for key, ids in anomalies.items()}},
    }


def write_vhm_list(root: Path, list_name: str, mix, total: int, ask: Asker, reasoning: bool,
                   numbers: Counter) -> dict:
    """One VHM-style list; its images go to ``root/<sub>/``, numbered on from ``numbers`` (shared by lists)."""
    sizes = plan.allocate(total, [share for _, _, share in mix])
    records = []
    by_kind: Counter = Counter()
    with parallel_writes() as write:
        for (folder, kind, _), size in zip(mix, sizes):
            for _ in range(size):
                scene, qas = ask_kind(ask, kind, plan.CLS_LABELS.get(folder))
                stem = f"{folder}_{numbers[folder]:06d}"
                numbers[folder] += 1
                write(root / folder / f"{stem}.jpg", encode_jpeg(scene.image))
                records.append({"id": stem, "source_dataset": folder, "image": f"{stem}.jpg",
                                "conversations": conversations(qas, reasoning)})
                by_kind[kind] += 1
    ask.rng.shuffle(records)
    write_json(root / list_name, records)
    return {"records": len(records), "by_source": dict(sorted(Counter(r["source_dataset"] for r in records).items())),
            "by_kind": dict(sorted(by_kind.items()))}


def write_sft(root: Path, scale: plan.Scale, sft_rng: random.Random, reasoning_rng: random.Random) -> dict:
    numbers: Counter = Counter()
    lists = {
        "list_sft.json": write_vhm_list(root, "list_sft.json", plan.SFT_MIX, scale.sft, Asker(sft_rng),
                                        reasoning=False, numbers=numbers),
        "list_sft_reasoning.json": write_vhm_list(root, "list_sft_reasoning.json", plan.REASONING_MIX,
                                                  scale.reasoning, Asker(reasoning_rng), reasoning=True,
                                                  numbers=numbers),
    }
    return {**lists, "images": sum(numbers.values()), "by_folder": dict(sorted(numbers.items()))}


def save_train_split(root: Path, rows: list[dict], features) -> None:
    """``rows`` as the ``train`` split of a DatasetDict saved with ``save_to_disk``; written beside ``root`` first,
    then renamed onto it."""
    from datasets import Dataset, DatasetDict

    columns = {name: [row[name] for row in rows] for name in features}
    staging = root.with_name(f".{root.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    DatasetDict({"train": Dataset.from_dict(columns, features=features)}).save_to_disk(str(staging))
    shutil.rmtree(root, ignore_errors=True)
    os.replace(staging, root)


def write_grpo(root: Path, scale: plan.Scale, rng: random.Random) -> dict:
    """The GRPO DatasetDict (``save_train_split``)."""
    from datasets import Features, Image, List, Value

    kinds = [kind for kind, _ in plan.GRPO_MIX]
    sizes = plan.allocate(scale.grpo, [share for _, share in plan.GRPO_MIX])
    ask = Asker(rng)
    rows = []
    for kind, size in zip(kinds, sizes):
        for _ in range(size):
            scene, (qa,) = ask_kind(ask, kind)
            jpeg = encode_jpeg(scene.image)
            question = human_turn(qa, first=False)
            rows.append({
                "prompt": [{"role": "user", "content": [{"type": "image", "text": None},
                                                        {"type": "text", "text": question}]}],
                "image": {"bytes": jpeg, "path": None},
                "solution": [qa.answer_type, qa.answer, question, base64.b64encode(jpeg).decode("ascii")],
            })
    rng.shuffle(rows)
    features = Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "image": Image(),
        "solution": List(Value("string")),
    })
    save_train_split(root, rows, features)
    return {"rows": len(rows), "by_kind": dict(zip(kinds, sizes)),
            "by_answer_type": dict(sorted(Counter(row["solution"][0] for row in rows).items()))}


EvalSample = Callable[[Asker, str, str, int], tuple[dict, list[tuple[str, np.ndarray]]]]


def write_eval_files(root: Path, file_names, per_file: int, stream_for: Callable[[str], random.Random],
                     sample: EvalSample) -> dict[str, int]:
    """One eval file per name, each drawn from its own random stream ``stream_for(file_name)`` with balanced
    answers: ``sample(ask, file_name, stem, number)`` gives a record and its images as (name, pixels), written
    under ``<root>/<file stem>/``. Returns the record count per file. Both demo worlds write their eval sets so."""
    counts = {}
    for file_name in file_names:
        stem = Path(file_name).stem
        ask = Asker(stream_for(file_name), balanced=True)
        records = []
        with parallel_writes() as write:
            for number in range(per_file):
                record, images = sample(ask, file_name, stem, number)
                for name, pixels in images:
                    write(root / stem / name, encode_jpeg(pixels))
                records.append(record)
        write_json(root / file_name, records)
        counts[file_name] = len(records)
    return counts


def write_eval(root: Path, scale: plan.Scale, rng_for) -> dict:
    """The 12 eval files; each task draws from its own random stream, answers balanced by cycling.

    Grounding answers are pixel boxes, like the real VG_DOIR_RSVG_test.json (training lists use 0-1000).
    """
    def sample(ask: Asker, file_name: str, stem: str, number: int):
        scene, (qa,) = ask_kind(ask, plan.EVAL_TASKS[file_name], plan.CLS_LABELS.get(file_name))
        image = f"{stem}_{number:05d}.jpg"
        pixels = scene.image if qa.original_size is None else resized(scene.image, qa.original_size)
        record = {"image": image, "size": [pixels.shape[1], pixels.shape[0]],
                  "conversations": [{"from": "human", "value": qa.question},
                                    {"from": "gpt", "value": qa.pixel_answer or qa.answer}]}
        if qa.lhrs_types:
            record["type"] = list(qa.lhrs_types)
        return record, [(image, pixels)]

    counts = write_eval_files(root, plan.EVAL_TASKS, scale.eval_per_task, lambda name: rng_for(f"eval:{name}"),
                              sample)
    return {"records": counts, "lhrs_types": {str(type_id): name for type_id, name in LHRS_TYPES.items()}}
