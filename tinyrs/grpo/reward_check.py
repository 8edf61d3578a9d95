"""What GRPO changed in the policy's own rewards: the model before the stage and the model after it answer the
same prompts with the same sampling seeds (common random numbers), scored by the stage's own rewards.

The training log's reward curve compares early batches with late ones: other prompts, each sampled once. On the
TinyRS demo it rose as much in a run at a learning rate of 1e-12 as in the real one (bench/README.md, "GRPO's
reward check"): the prompts' order, not learning. Here each model draws ``samples`` completions for each of the
same ``prompts`` rows of the stage's dataset (its kept rows, checked and prompted exactly as the trainer does), at
the stage's temperature, top-k, top-p and completion length, the generator seeded per row; ``compare`` pairs the
two models prompt by prompt: per reward the mean before and after and the paired change with its 95% interval.
Rewards that call the LLM judge call it here too, for every sample.
"""
from __future__ import annotations

from pathlib import Path

from tinyrs.grpo.curves import TASK   # a task's reward (GeoVLM-R1's R_task), here over that task's prompts
from tinyrs.grpo.dataset import load_grpo_dataset, row_images
from tinyrs.grpo.rewards import RewardSuite
from tinyrs.grpo.rewards.inputs import read_completion, sample_from_solution
from tinyrs.io import DataError, read_json
from tinyrs.model.load import load_model, load_processor
from tinyrs.settings import GrpoSettings

ACCURACY = "accuracy"  # the weighted sum of the sample's rewards, format not included
CONFIDENCE = 0.95
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "max_completion_length")  # the stage's, recorded in each file
# what must be equal in both files for their prompts to pair
PAIRED_KEYS = ("dataset", "rows", "samples", "seed", *SAMPLING_KEYS)


def chosen_rows(count: int, prompts: int, seed: int) -> list[int]:
    """``prompts`` row indices of ``count`` (all of them when there are fewer), the same for every model."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(count)
    return sorted(int(i) for i in order[:prompts])


def prompt_scores(suite: RewardSuite, texts: list[str], solution, task, where: str) -> dict[str, float]:
    """Mean over one prompt's completions of each reward: ``format``, each component, ``accuracy``, ``total``."""
    sample = sample_from_solution(solution, where, task)
    mapping = suite.mapping_for(sample, where)
    completions = [read_completion(text, suite.chat.reasoning_tag, suite.chat.answer_tag) for text in texts]
    scored = suite.score(completions, [sample] * len(texts), [mapping] * len(texts))
    for entry in scored:
        entry[ACCURACY] = entry["total"] - suite.format_weight * entry["format"]
    return {name: sum(entry[name] for entry in scored) / len(scored) for name in scored[0]}


def sample_rewards(settings: GrpoSettings, model_dir: str, dataset_path: str, prompts: int, samples: int,
                   seed: int) -> dict:
    """Each chosen prompt's mean rewards over ``samples`` completions of the model in ``model_dir``, and the
    completions themselves (to read what changed)."""
    import torch
    from trl.data_utils import prepare_multimodal_messages

    processor = load_processor(model_dir, settings.min_pixels, settings.max_pixels)
    dataset, report = load_grpo_dataset(dataset_path, settings, processor)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(model_dir, settings.precision, settings.attn_implementation).to(device).eval()
    suite = RewardSuite(settings)
    rows = chosen_rows(len(dataset), prompts, seed)
    records = []
    for index in rows:
        row = dataset[index]
        images = row_images(row)
        messages = prepare_multimodal_messages(row["prompt"], images=images)
        text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = processor(text=[text], images=images, return_tensors="pt").to(device)
        torch.manual_seed(seed + index)
        with torch.no_grad():
            output = model.generate(**inputs, do_sample=True, temperature=settings.temperature,
                                    top_k=settings.top_k, top_p=settings.top_p, num_return_sequences=samples,
                                    max_new_tokens=settings.max_completion_length)
        texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        task = row.get("task")
        scores = prompt_scores(suite, texts, row["solution"], task, f"{dataset_path}: row {index}")
        records.append({"row": index, "task": task, "answer_type": str(row["solution"][0]), "rewards": scores,
                        "completions": texts})
    return {"model": str(model_dir), "dataset": str(dataset_path), "rows": rows, "samples": samples, "seed": seed,
            **{key: getattr(settings, key) for key in SAMPLING_KEYS}, "skipped": report["skipped"],
            "prompts": records}


def _groups(record: dict) -> dict[str, float]:
    """The rewards one prompt contributes to, by the name the comparison reports them under."""
    groups = dict(record["rewards"])
    if record["task"] is not None:
        groups[TASK + record["task"]] = record["rewards"][ACCURACY]
    return groups


def compare(before: dict, after: dict, where: str = "") -> list[dict]:
    """Per reward: prompts ``n``, mean ``before`` and ``after``, the mean paired ``change`` and its 95% interval
    (``low``, ``high``; None with fewer than two prompts or no spread). Raises DataError unless both files
    sampled the same prompts the same way."""
    from scipy.stats import ttest_rel

    for key in PAIRED_KEYS:
        if before[key] != after[key]:
            raise DataError(f"{where}: '{key}' differs ({before[key]!r} vs {after[key]!r}): the samples do not pair")
    first, second = [_groups(record) for record in before["prompts"]], [_groups(r) for r in after["prompts"]]
    rows = []
    for name in sorted({name for groups in first for name in groups}):
        pairs = [(a[name], b[name]) for a, b in zip(first, second) if name in a and name in b]
        x, y = [a for a, _ in pairs], [b for _, b in pairs]
        change = sum(b - a for a, b in pairs) / len(pairs)
        low = high = None
        if len(pairs) > 1 and len({round(b - a, 12) for a, b in pairs}) > 1:
            interval = ttest_rel(y, x).confidence_interval(CONFIDENCE)
            low, high = float(interval.low), float(interval.high)
        rows.append({"reward": name, "n": len(pairs), "before": sum(x) / len(x), "after": sum(y) / len(y),
                     "change": change, "low": low, "high": high})
    return rows


def compare_files(before: str | Path, after: str | Path) -> list[dict]:
    return compare(read_json(before), read_json(after), f"{before} vs {after}")
