"""Turning manifest records into model inputs: rendering, assistant-only labels, padding.

A sample is rendered through the shared chat template (tinyrs.chat) and tokenised by the
processor together with its images, so the image-token expansion respects the configured pixel limits.
Labels cover only the assistant turns (their text and the closing ``<|im_end|>``). A sample longer
than ``max_length`` is skipped and counted, never truncated: cutting through image tokens breaks
the correspondence between image tokens and visual features. A sample whose text alone has more
characters than ``max_length`` tokens can hold is skipped before it is rendered or tokenised: a
single 50 MB string would otherwise cost gigabytes and minutes (``max_chars``). A record with an image
that does not decode is skipped and counted too (``UnreadableImage``): one bad file in a million must
not stop a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyrs import chat
from tinyrs.io import DataError

IGNORE_INDEX = -100
NFC_SHRINK = 3  # NFC normalisation shrinks UTF-8 text at most 3-fold (Hangul jamo: 9 bytes become 3)
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


class UnreadableImageError(DataError):
    """An image file that does not decode (random bytes, empty, truncated, ...)."""

    def __init__(self, path: str, error: str):
        super().__init__(f"{path}: image does not decode: {error}")
        self.path, self.error = path, error


@dataclass(frozen=True)
class UnreadableImage:
    """A record skipped for an image that does not decode, passed through the batch to the trainer."""

    index: int  # the record's manifest index (its position in the corrected list)
    source: str
    path: str
    error: str


def load_images(paths: list[str]):
    """The images as RGB; ``UnreadableImageError`` names the first file that does not decode."""
    from PIL import Image

    images = []
    for path in paths:
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...) for bad files
            raise UnreadableImageError(path, f"{type(err).__name__}: {err}") from err
    return images


def max_chars(tokenizer, max_length: int) -> int:
    """The most characters a text of ``max_length`` tokens can hold, a bound that needs no tokenising.

    A token stands for at most as many UTF-8 bytes as its vocabulary entry is long (byte-level BPE writes
    one character per byte; added tokens are written out), a character is at least one byte, and the
    tokenizer's normaliser (NFC) shrinks text at most ``NFC_SHRINK``-fold.
    """
    longest_token = max(map(len, tokenizer.get_vocab()))
    return max_length * longest_token * NFC_SHRINK


@dataclass
class SampleEncoder:
    """Encode one manifest record; returns None (and counts it) when it is longer than ``max_length``."""

    processor: object
    system: str | None
    max_length: int
    skipped_too_long: int = 0
    _header_ids: list[int] = field(default_factory=list, init=False)
    _end_id: int = field(default=0, init=False)
    _max_chars: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        tokenizer = self.processor.tokenizer
        self._header_ids = tokenizer.encode(ASSISTANT_HEADER, add_special_tokens=False)
        self._end_id = tokenizer.convert_tokens_to_ids(TURN_END)
        self._max_chars = max_chars(tokenizer, self.max_length)

    def __call__(self, record: dict) -> dict | None:
        if sum(len(turn["value"]) for turn in record["conversations"]) > self._max_chars:
            self.skipped_too_long += 1
            return None
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


def collate(samples: list[dict | UnreadableImage | None], pad_id: int, padding_free: bool = False) -> dict:
    """Batch the kept samples: right-padded rows, or one packed row. ``None`` samples were too long
    (counted in ``tinyrs_skipped``); ``UnreadableImage`` ones travel on in ``tinyrs_unreadable``.

    Visual patches are concatenated in sample order either way. ``tinyrs_tokens`` (real tokens,
    no padding) travels as a Python int so counting throughput never waits on the GPU.
    """
    kept = [s for s in samples if isinstance(s, dict)]
    batch: dict = {"tinyrs_skipped": sum(s is None for s in samples),
                   "tinyrs_unreadable": [s for s in samples if isinstance(s, UnreadableImage)]}
    if not kept:
        return batch
    batch["tinyrs_tokens"] = sum(s["input_ids"].shape[0] for s in kept)
    batch.update(pack(kept) if padding_free else pad(kept, pad_id))
    with_images = [s for s in kept if "pixel_values" in s]
    if with_images:
        import torch

        batch["pixel_values"] = torch.cat([s["pixel_values"] for s in with_images])
        batch["image_grid_thw"] = torch.cat([s["image_grid_thw"] for s in with_images])
    return batch


def pad(kept: list[dict], pad_id: int) -> dict:
    import torch

    lengths = torch.tensor([s["input_ids"].shape[0] for s in kept])
    length = int(lengths.max())

    def padded(key: str, value: int):
        out = torch.full((len(kept), length), value, dtype=kept[0][key].dtype)
        for row, sample in enumerate(kept):
            out[row, : sample[key].shape[0]] = sample[key]
        return out

    batch = {
        "input_ids": padded("input_ids", pad_id),
        "labels": padded("labels", IGNORE_INDEX),
        "attention_mask": (torch.arange(length)[None, :] < lengths[:, None]).long(),
    }
    if "mm_token_type_ids" in kept[0]:
        batch["mm_token_type_ids"] = padded("mm_token_type_ids", 0)
    return batch


def pack(kept: list[dict]) -> dict:
    """Padding-free: the samples end to end in one row, with ``tinyrs_sample_lengths`` marking the cuts.

    The first label of every sample is ignored so no sample learns to predict the next one's start.
    The 3-D mRoPE positions need the model's ``get_rope_index``, so the trainer adds them
    (``packed_position_ids``); attention then stays within each sample (block-causal mask for SDPA
    and eager, ``cu_seqlens`` for flash-attention 2, both derived from the restarting text positions).
    """
    import torch

    labels = []
    for sample in kept:
        sample_labels = sample["labels"].clone()
        sample_labels[0] = IGNORE_INDEX
        labels.append(sample_labels)
    batch = {
        "input_ids": torch.cat([s["input_ids"] for s in kept])[None],
        "labels": torch.cat(labels)[None],
        "tinyrs_sample_lengths": [s["input_ids"].shape[0] for s in kept],
    }
    if "mm_token_type_ids" in kept[0]:
        batch["mm_token_type_ids"] = torch.cat([s["mm_token_type_ids"] for s in kept])[None]
    return batch


def packed_position_ids(model, input_ids, mm_token_type_ids, image_grid_thw, sample_lengths: list[int]):
    """Positions for a packed row, shaped (4, 1, total): text positions restarting at every sample,
    then the 3-D (temporal, height, width) mRoPE positions each sample would get on its own.

    ``model`` is the part holding ``get_rope_index`` (``Qwen2VLModel``, ``Qwen2_5_VLModel``: the families take the
    same arguments for images). The samples are laid out as a padded batch so ``get_rope_index`` walks the images in
    order. Videos are not handled: Qwen2.5-VL would also need their ``second_per_grid_ts``.
    """
    import torch

    lengths = torch.tensor(sample_lengths, device=input_ids.device)
    width = int(lengths.max())
    mask = torch.arange(width, device=input_ids.device)[None, :] < lengths[:, None]
    rows = torch.zeros(mask.shape, dtype=input_ids.dtype, device=input_ids.device)
    rows[mask] = input_ids[0]
    types = torch.zeros_like(rows)
    if mm_token_type_ids is not None:
        types[mask] = mm_token_type_ids[0].to(types.dtype)
    rope, _ = model.get_rope_index(rows, types, image_grid_thw=image_grid_thw, attention_mask=mask.long())
    spatial = rope[:, mask]
    text = torch.cat([torch.arange(n, device=input_ids.device) for n in sample_lengths])
    return torch.cat([text[None], spatial]).unsqueeze(1)


def estimated_lengths(manifest, visual_tokens_per_image: int, chars_per_token: float = 4.0) -> list[int]:
    """Approximate token counts of every manifest row for length-grouped batching, read from the
    manifest's columns without decoding an image or tokenising (seconds for a million rows)."""
    import numpy as np

    chars, images = manifest.text_chars_and_images()
    return (np.ceil(chars / chars_per_token) + images * visual_tokens_per_image).astype(int).tolist()
