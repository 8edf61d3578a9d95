"""Writing the GeoVLM-R1 demo world in the recipe's layout (recipes/geovlm-r1.yaml, docs/recipes.md):

- ``geovlm-r1-sft``: one LLaVA-style list (``plan.GEO_SFT_LIST``) with its images in one sub-folder per task's
  stand-in dataset; a bi-temporal record's ``image`` is [before, after] with one ``<image>`` each; answers in the
  recipe's ``<think>``/``<answer>`` tags;
- ``geovlm-r1-grpo``: a DatasetDict (``train``) with ``prompt``, ``images`` (a list per row: one image, or a pair),
  ``solution`` = [answer_type, answer, question] and ``task`` (a key of ``grpo_defaults.rewards.by_task``);
- ``geovlm-r1-eval``: one file per task of ``plan.GEO_EVAL_TASKS``, images under ``<file stem>/``; boxes on the
  0-1000 grid (the eval tasks' default ``answer_boxes: normalized``).
"""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Callable

from tinyrs.data.demo_world import plan
from tinyrs.data.demo_world.content import Asker
from tinyrs.data.demo_world.geovlm_tasks import TaskSample, ask_task
from tinyrs.data.demo_world.layouts import parallel_writes, save_train_split, write_eval_files
from tinyrs.data.demo_world.scenes import encode_jpeg
from tinyrs.io import write_json

SFT, GRPO, EVAL = "geovlm-r1-sft", "geovlm-r1-grpo", "geovlm-r1-eval"
REPOS = (SFT, GRPO, EVAL)
REASONING_TAG, ANSWER_TAG = "think", "answer"   # the recipe's chat tags
PAIR_SUFFIXES = ("before", "after")


def placeholders(sample: TaskSample) -> str:
    return "<image>\n" * len(sample.images)


def tagged_answer(sample: TaskSample) -> str:
    return (f"<{REASONING_TAG}>{sample.rationale}</{REASONING_TAG}>"
            f"<{ANSWER_TAG}>{sample.answer}</{ANSWER_TAG}>")


def image_names(stem: str, sample: TaskSample) -> list[str]:
    if len(sample.images) == 1:
        return [f"{stem}.jpg"]
    return [f"{stem}_{suffix}.jpg" for suffix in PAIR_SUFFIXES[:len(sample.images)]]


def task_counts(total: int) -> dict[str, int]:
    tasks = list(plan.GEO_MIX)
    return dict(zip(tasks, plan.allocate(total, [share for _, share in plan.GEO_MIX.values()])))


def write_sft(root: Path, scale: plan.GeoScale, rng: random.Random) -> dict:
    ask = Asker(rng)
    records = []
    with parallel_writes() as write:
        for task, size in task_counts(scale.sft).items():
            folder = plan.GEO_MIX[task][0]
            for number in range(size):
                sample = ask_task(ask, task)
                names = image_names(f"{folder}_{number:06d}", sample)
                for name, pixels in zip(names, sample.images):
                    write(root / folder / name, encode_jpeg(pixels))
                records.append({"id": f"{folder}_{number:06d}", "source_dataset": folder,
                                "image": names[0] if len(names) == 1 else names,
                                "conversations": [{"from": "human", "value": placeholders(sample) + sample.question},
                                                  {"from": "gpt", "value": tagged_answer(sample)}]})
    rng.shuffle(records)
    write_json(root / plan.GEO_SFT_LIST, records)
    return {"records": len(records), "by_source": dict(sorted(Counter(r["source_dataset"] for r in records).items()))}


def write_grpo(root: Path, scale: plan.GeoScale, rng: random.Random) -> dict:
    from datasets import Features, Image, List, Value

    ask = Asker(rng)
    rows = []
    for task, size in task_counts(scale.grpo).items():
        for _ in range(size):
            sample = ask_task(ask, task)
            content = [{"type": "image", "text": None}] * len(sample.images) + [{"type": "text",
                                                                                  "text": sample.question}]
            rows.append({"prompt": [{"role": "user", "content": content}],
                         "images": [{"bytes": encode_jpeg(pixels), "path": None} for pixels in sample.images],
                         "solution": [sample.answer_type, sample.answer, sample.question], "task": task})
    rng.shuffle(rows)
    features = Features({
        "prompt": List({"role": Value("string"), "content": List({"type": Value("string"), "text": Value("string")})}),
        "images": List(Image()),
        "solution": List(Value("string")),
        "task": Value("string"),
    })
    save_train_split(root, rows, features)
    return {"rows": len(rows), "by_task": dict(sorted(Counter(row["task"] for row in rows).items()))}


def write_eval(root: Path, scale: plan.GeoScale, rng_for: Callable[[str], random.Random]) -> dict:
    """One file per task, each from its own random stream, answers balanced where a task picks by index."""
    def sample(ask: Asker, file_name: str, stem: str, number: int):
        drawn = ask_task(ask, plan.GEO_EVAL_TASKS[file_name])
        names = image_names(f"{stem}_{number:05d}", drawn)
        record = {"image": names[0] if len(names) == 1 else names,
                  "conversations": [{"from": "human", "value": drawn.question},
                                    {"from": "gpt", "value": drawn.answer}]}
        return record, list(zip(names, drawn.images))

    counts = write_eval_files(root, plan.GEO_EVAL_TASKS, scale.eval_per_task,
                              lambda name: rng_for(f"geovlm-eval:{name}"), sample)
    return {"records": counts}
