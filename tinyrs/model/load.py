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


def load_model(model_dir: str | Path, precision: str = "fp32", attn_implementation: str = "sdpa",
               for_training: bool = False):
    """The model in ``precision`` for inference; for training always in fp32, whatever ``precision`` says.

    Training's bf16 is mixed precision: ``TrainingArguments(bf16=True)`` autocasts the compute to bf16
    over these fp32 master weights (DeepSpeed's bf16 mode keeps its own fp32 copy, also made from
    them). Weights held in bf16 and updated by AdamW lose small updates to rounding: 10 steps at lr
    1e-5 changed 15% of them (REFERENCE.md §11).
    """
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(
        model_dir_of(model_dir),
        dtype=torch_dtype("fp32" if for_training else effective_precision(precision)),
        attn_implementation=resolve_attention(attn_implementation),
    )
