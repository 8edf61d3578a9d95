"""The GRPO dataset: the VHM_dataset_grpo DatasetDict, checked and given the shared system prompt.

Rows are checked before training starts, so a malformed row is a counted, reported skip here
rather than a crash inside a GPU job; so is a row whose image does not decode (each one named in
the report). A row holds one image (an ``image`` column of images, as VHM_dataset_grpo) or several (an ``images``
column of image lists: a bi-temporal pair, before then after), one image item in its prompt per image, in order;
TRL's GRPOTrainer fills the prompt's image items from either column. Open-ended rows (answer type "0") are
dropped, and counted, only when ``skip_open_ended`` is set. Prompts longer than ``max_prompt_length`` tokens are dropped
and counted too, never truncated: cutting a multimodal prompt would cut through its image tokens.
"""
from __future__ import annotations

from collections import Counter

from tinyrs import chat
from tinyrs.grpo.rewards import check_ready, keeps_sample
from tinyrs.io import DataError
from tinyrs.settings import GrpoSettings

ANSWER_TYPES = ("0", "1", "2")
IMAGE, IMAGES = "image", "images"   # the image columns: one image per row, or a list of them


def row_problem(row: dict) -> str | None:
    """Why a row cannot be trained on, or None."""
    solution = row.get("solution")
    if not isinstance(solution, (list, tuple)) or len(solution) < 3:
        return "solution_not_a_list_of_3_or_4"
    if str(solution[0]) not in ANSWER_TYPES:
        return "unknown_answer_type"
    if not isinstance(solution[1], str) or not solution[1].strip():
        return "empty_answer"
    prompt = row.get("prompt")
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) and "role" in m for m in prompt):
        return "prompt_not_conversational"
    images = row_images(row)
    if not images or any(image is None for image in images):
        return "missing_image"
    if image_items(prompt, len(images)) != len(images):
        return "image_count_mismatch"
    return None


def image_items(prompt: list[dict], n_images: int) -> int:
    """The image items TRL's GRPOTrainer will fill: those in the prompt's contents, plus one per image before a user
    turn whose content is plain text (TRL's ``prepare_multimodal_messages`` inserts them there)."""
    listed = sum(1 for turn in prompt if isinstance(turn.get("content"), list) for item in turn["content"]
                 if isinstance(item, dict) and item.get("type") == "image")
    inserted = any(turn.get("role") == "user" and isinstance(turn.get("content"), str) for turn in prompt)
    return listed + (n_images if inserted else 0)


def row_images(row: dict) -> list:
    """The row's images in order: its ``images`` list, or its one ``image``."""
    if IMAGES in row:
        return list(row[IMAGES] or [])
    return [] if row.get(IMAGE) is None else [row[IMAGE]]


def with_system_prompt(prompt: list[dict], system: str | None) -> list[dict]:
    """Replace any system turn with the configured one (the same text CoT-SFT and eval use)."""
    turns = [turn for turn in prompt if turn.get("role") != "system"]
    if system is None:
        return turns
    return [{"role": "system", "content": [{"type": "text", "text": system}]}, *turns]


def image_tokens(processor, image) -> int:
    """Visual tokens the processor expands one image to, from its size alone (no pixels resized)."""
    image_processor = processor.image_processor
    width, height = image.size
    return image_processor.get_number_of_image_patches(height, width) // image_processor.merge_size**2


def prompt_tokens(processor, prompt: list[dict], images: list) -> int:
    """The prompt's length in tokens as the model sees it: rendered by the shared chat template, as
    TRL renders it, with each image placeholder expanded to its image's visual tokens."""
    ids = processor.tokenizer(chat.render(processor, prompt, add_generation_prompt=True))["input_ids"]
    return len(ids) + sum(image_tokens(processor, image) - 1 for image in images)


def skip_reason(row: dict, settings: GrpoSettings, processor, system: str | None) -> str | None:
    """Why a row is left out of training, or None; the costly length check runs last."""
    problem = row_problem(row)
    if problem:
        return problem
    if not keeps_sample(settings, row["solution"]):
        return "open_ended_skipped_by_config"
    prompt = with_system_prompt(row["prompt"], system)
    try:
        length = prompt_tokens(processor, prompt, row_images(row))
    except ValueError:  # the processor refuses the image's shape (aspect ratio over 200)
        return "image_shape_unusable"
    return "prompt_too_long" if length > settings.max_prompt_length else None


def image_column(dataset, path: str) -> str:
    """``image`` (one image per row) or ``images`` (a list of images per row), checked."""
    from datasets import Image, List

    features = dataset.features
    if isinstance(features.get(IMAGES), List) and isinstance(features[IMAGES].feature, Image):
        return IMAGES
    if isinstance(features.get(IMAGE), Image):
        return IMAGE
    raise DataError(f"{path}: the dataset has no 'image' column of images nor an 'images' column of image lists "
                    f"(columns: {dataset.column_names})")


def decoded_rows(dataset, path: str):
    """``(index, row, unreadable)`` per row, the images decoded as ``datasets`` decodes them but without
    raising: ``unreadable`` names the row (and the first bad image's file, when the dataset kept it) when an image
    does not decode, else None. A missing image stays None for ``row_problem``."""
    from datasets import Image, List

    column = image_column(dataset, path)
    several = column == IMAGES
    decoder = dataset.features[column].feature if several else dataset.features[column]
    raw = dataset.cast_column(column, List(Image(decode=False)) if several else Image(decode=False))
    for index, row in enumerate(raw):
        encoded_images = (row[column] or []) if several else [row[column]]
        decoded = []
        for encoded in encoded_images:
            try:
                decoded.append(None if encoded is None else decoder.decode_example(encoded))
            except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) for bad files
                yield index, row, {"row": index, "path": encoded.get("path"), "error": f"{type(err).__name__}: {err}"}
                break
        else:
            row[column] = decoded if several else decoded[0]
            yield index, row, None


def load_grpo_dataset(path: str, settings: GrpoSettings, processor, split: str = "train"):
    """Load, check and prepare the training split; returns (dataset, report).

    ``processor`` is the one training uses (its pixel limits set), so prompt lengths are measured
    exactly as the model will see them.

    ``check_ready`` then checks the reward mapping against the kept rows and their optional ``task`` column
    (unmapped answer types, an unusable judge) before any model is loaded; the report's ``reward_routes`` are
    its counts of rows per route (``combine.check_ready``).
    """
    from datasets import load_from_disk

    dataset = load_from_disk(path)[split]
    system = chat.system_prompt(settings.chat, "reasoning")
    skipped: Counter = Counter()
    keep: list[int] = []
    answer_types: Counter = Counter()
    unreadable_images: list[dict] = []
    for index, row, unreadable in decoded_rows(dataset, path):
        if unreadable:
            unreadable_images.append(unreadable)
            print(f"tinyrs grpo: skipped row {index}: image {unreadable['path'] or '(no file name)'} does not decode: "
                  f"{unreadable['error']}", flush=True)
        problem = "image_unreadable" if unreadable else skip_reason(row, settings, processor, system)
        if problem:
            skipped[problem] += 1
            continue
        answer_types[str(row["solution"][0])] += 1
        keep.append(index)
    if not keep:
        raise ValueError(f"{path}: no usable GRPO rows ({dict(skipped)})")
    kept = dataset.select(keep)
    tasks = kept["task"] if "task" in kept.column_names else None  # GeoVLM-R1 routing (grpo.rewards.by_task)
    routes = check_ready(settings, (row["solution"] for row in kept.select_columns("solution")), tasks)
    prepared = kept.map(
        lambda row: {"prompt": with_system_prompt(row["prompt"], system)}, desc="system prompt"
    )
    report = {"rows": len(dataset), "kept": len(keep), "skipped": dict(skipped), "answer_types": dict(answer_types),
              "reward_routes": routes, "unreadable_images": unreadable_images}
    for reason, count in sorted(skipped.items()):
        print(f"tinyrs grpo: skipped {count} rows: {reason}", flush=True)
    return prepared, report
