"""Loading a model directory for training or inference, with precision and attention from config."""
from __future__ import annotations

from pathlib import Path

from tinyrs.io import model_dir_of


def torch_dtype(precision: str):
    import torch

    return {"bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def resolve_attention(requested: str) -> str:
    """flash_attention_2 needs CUDA and the flash_attn package; elsewhere fall back to SDPA, and say so."""
    if requested != "flash_attention_2":
        return requested
    import importlib.util

    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return requested
    print("tinyrs: flash_attention_2 unavailable (no CUDA or no flash_attn); using sdpa")
    return "sdpa"


def effective_precision(precision: str) -> str:
    """bf16 on the CPU is 4-10x slower than fp32 (REFERENCE.md §5): use fp32 there."""
    import torch

    if precision == "bf16" and not torch.cuda.is_available():
        return "fp32"
    return precision


def load_processor(model_dir: str | Path, min_pixels: int | None = None, max_pixels: int | None = None):
    """The model's processor with the configured pixel limits applied under the key it actually reads.

    The reference passed ``min_pixel``/``max_pixel`` (REFERENCE.md §3.2), which the processor ignores.
    Current processors read ``size = {shortest_edge, longest_edge}`` (in pixels); legacy
    ``min_pixels``/``max_pixels`` attributes are folded into it so they cannot override it.
    """
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir_of(model_dir))
    image_processor = processor.image_processor
    size = dict(image_processor.size or {})
    for legacy, key, wanted in (("min_pixels", "shortest_edge", min_pixels), ("max_pixels", "longest_edge", max_pixels)):
        saved = getattr(image_processor, legacy, None)
        if wanted is not None or saved is not None:
            size[key] = wanted if wanted is not None else saved
        if saved is not None:
            setattr(image_processor, legacy, None)
    image_processor.size = size
    return processor


def load_model(model_dir: str | Path, precision: str = "fp32", attn_implementation: str = "sdpa"):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(
        model_dir_of(model_dir),
        dtype=torch_dtype(effective_precision(precision)),
        attn_implementation=resolve_attention(attn_implementation),
    )
