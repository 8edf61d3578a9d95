"""Turning manifest records into model inputs: rendering, assistant-only labels, padding.

A sample is rendered through the shared chat template (tinyrs.chat) and tokenised by the
processor together with its images, so the image-token expansion respects the configured pixel limits.
Labels cover only the assistant turns (their text and the closing ``<|im_end|>``). A sample longer
than ``max_length`` is skipped and counted, never truncated: cutting through image tokens breaks
the correspondence between image tokens and visual features.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyrs import chat

IGNORE_INDEX = -100
ASSISTANT_HEADER = "<|im_start|>assistant\n"
TURN_END = "<|im_end|>"


def assistant_label_mask(input_ids: list[int], header_ids: list[int], end_id: int) -> list[bool]:
    """True for tokens of assistant replies: after each assistant header up to and including ``<|im_end|>``."""
    mask = [False] * len(input_ids)
    width = len(header_ids)
    position = 0
    while position <= len(input_ids) - width:
        if input_ids[position:position + width] == header_ids:
            cursor = position + width
            while cursor < len(input_ids):
                mask[cursor] = True
                if input_ids[cursor] == end_id:
                    break
                cursor += 1
            position = cursor + 1
        else:
            position += 1
    return mask


def load_images(paths: list[str]):
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return images


@dataclass
class SampleEncoder:
    """Encode one manifest record; returns None (and counts it) when it is longer than ``max_length``."""

    processor: object
    system: str | None
    max_length: int
    skipped_too_long: int = 0
    _header_ids: list[int] = field(default_factory=list, init=False)
    _end_id: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        tokenizer = self.processor.tokenizer
        self._header_ids = tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False)
        self._end_id = tokenizer.convert_tokens_to_ids(TURN_END)

    def __call__(self, record: dict) -> dict | None:
        messages = chat.to_messages(record["conversations"], self.system)
        text = chat.render(self.processor, messages, add_generation_prompt=False)
        images = load_images(record["images"]) or None
        encoded = self.processor(text=[text], images=images, return_tensors="pt")
        input_ids = encoded["input_ids"][0]
        if input_ids.shape[0] > self.max_length:
            self.skipped_too_long += 1
            return None
        mask = assistant_label_mask(input_ids.tolist(), self._header_ids, self._end_id)
        labels = input_ids.clone()
        labels[[not keep for keep in mask]] = IGNORE_INDEX
        sample = {"input_ids": input_ids, "labels": labels}
        if images:
            sample["pixel_values"] = encoded["pixel_values"]
            sample["image_grid_thw"] = encoded["image_grid_thw"]
        if "mm_token_type_ids" in encoded:
            sample["mm_token_type_ids"] = encoded["mm_token_type_ids"][0]
        return sample


def collate(samples: list[dict | None], pad_id: int) -> dict:
    """Right-pad a batch; concatenate visual patches in sample order. ``None`` samples were skipped."""
    import torch

    kept = [s for s in samples if s is not None]
    batch: dict = {"tinyrs_skipped": len(samples) - len(kept)}
    if not kept:
        return batch
    length = max(s["input_ids"].shape[0] for s in kept)

    def pad(key: str, value: int):
        out = torch.full((len(kept), length), value, dtype=kept[0][key].dtype)
        for row, sample in enumerate(kept):
            out[row, : sample[key].shape[0]] = sample[key]
        return out

    batch["input_ids"] = pad("input_ids", pad_id)
    batch["labels"] = pad("labels", IGNORE_INDEX)
    batch["attention_mask"] = (torch.arange(length)[None, :] < torch.tensor(
        [s["input_ids"].shape[0] for s in kept])[:, None]).long()
    if "mm_token_type_ids" in kept[0]:
        batch["mm_token_type_ids"] = pad("mm_token_type_ids", 0)
    with_images = [s for s in kept if "pixel_values" in s]
    if with_images:
        batch["pixel_values"] = torch.cat([s["pixel_values"] for s in with_images])
        batch["image_grid_thw"] = torch.cat([s["image_grid_thw"] for s in with_images])
    return batch
