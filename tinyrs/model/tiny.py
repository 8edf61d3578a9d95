"""The demo world's base model: a few-million-parameter Qwen2-VL or Qwen2.5-VL, built offline.

It stands where the family's instruct model (Qwen/Qwen2-VL-2B-Instruct, Qwen/Qwen2.5-VL-3B-Instruct) stands in the
real run: same architecture class, the same special tokens for turns, boxes and images, the same chat template and
processor, saved in Hugging Face format. The weights are random; the byte-level BPE tokenizer is trained on the spot
from the text of the training lists. What differs between the families is read from ``tinyrs.model.families``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

from tinyrs.config import ConfigError
from tinyrs.model.families import DEFAULT_FAMILY, Family, family_named

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# About 2.6 M parameters: big enough to learn the demo world, small enough to train on 2 CPU cores. A config's
# base_model.tiny_arch overrides these (tiny_arch below): the TinyRS demo's sets rope_theta.
TINY_ARCH = {
    "text_hidden": 192, "text_layers": 4, "text_heads": 4, "text_kv_heads": 2, "text_intermediate": 512,
    "vision_embed": 96, "vision_depth": 3, "vision_heads": 4, "vision_mlp_ratio": 2, "vocab_size": 2048,
    "max_positions": 4096, "rope_theta": 10000.0,
    "vision_window": 56,  # Qwen2.5-VL's attention windows, in pixels: 2 x 2 windows on the demo's 112-pixel images
}

# Qwen2-VL-2B-Instruct's shapes (its config.json), for benchmarks with random weights where the Hub is out of reach.
QWEN2_VL_2B_ARCH = {
    "text_hidden": 1536, "text_layers": 28, "text_heads": 12, "text_kv_heads": 2, "text_intermediate": 8960,
    "vision_embed": 1280, "vision_depth": 32, "vision_heads": 16, "vision_mlp_ratio": 4, "vocab_size": 151936,
    "max_positions": 32768, "rope_theta": 1000000.0,
    "vision_window": 112,  # used only by a Qwen2.5-VL built with these shapes (transformers' default window)
}


def tiny_arch(overrides: dict | None = None) -> dict:
    """``TINY_ARCH`` with ``overrides`` (base_model.tiny_arch) in place; a key it does not have is a config error."""
    unknown = sorted(set(overrides or {}) - set(TINY_ARCH))
    if unknown:
        raise ConfigError(f"base_model.tiny_arch: unknown key(s) {', '.join(unknown)}; "
                         f"the tiny model has {', '.join(sorted(TINY_ARCH))}")
    return TINY_ARCH | (overrides or {})


def corpus_from_lists(paths: Iterable[str | Path]) -> Iterator[str]:
    """Every conversation turn of the given VHM-style JSON lists."""
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
        for record in records:
            for turn in record.get("conversations", []):
                yield str(turn.get("value", ""))


def train_tokenizer(texts: Iterable[str], vocab_size: int, chat_template: str):
    """A byte-level BPE like Qwen2's, trained on ``texts``, wrapped as ``Qwen2TokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(SPECIAL_TOKENS),
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = Qwen2TokenizerFast(
        tokenizer_object=bpe,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = chat_template
    return tokenizer


def build_processor(tokenizer, min_pixels: int, max_pixels: int, family: Family):
    """The family's processor; both families use Qwen2-VL's image and video processors."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return family.transformers_class("processor_class")(
        image_processor=Qwen2VLImageProcessor(size=size),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(size=size),
        chat_template=family.chat_template,
    )


def build_config(tokenizer, family: Family, arch: dict = TINY_ARCH):
    head_dim = arch["text_hidden"] // arch["text_heads"]
    half = head_dim // 2  # mrope sections (t, h, w) must add up to head_dim / 2; Qwen's split is 1:1.5:1.5
    spatial = (half - half // 4) // 2
    mrope_section = [half - 2 * spatial, spatial, spatial]
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
    )}
    text_config = {
        "vocab_size": max(arch["vocab_size"], len(tokenizer)),
        "hidden_size": arch["text_hidden"],
        "intermediate_size": arch["text_intermediate"],
        "num_hidden_layers": arch["text_layers"],
        "num_attention_heads": arch["text_heads"],
        "num_key_value_heads": arch["text_kv_heads"],
        "max_position_embeddings": arch["max_positions"],
        "rope_parameters": {"rope_type": "default", "rope_theta": arch["rope_theta"], "mrope_section": mrope_section},
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.pad_token_id,
    }
    return family.transformers_class("config_class")(
        text_config=text_config, vision_config=family.vision_config(arch), tie_word_embeddings=True, **ids
    )


def build_tiny_model(out_dir: str | Path, corpus: Iterable[str], min_pixels: int, max_pixels: int,
                     seed: int = 0, arch: dict = TINY_ARCH, family: str = DEFAULT_FAMILY) -> dict:
    """Write a loadable model directory of ``family`` to ``out_dir``; returns a summary for the manifest."""
    import torch
    from transformers import GenerationConfig

    spec = family_named(family)
    torch.manual_seed(seed)
    tokenizer = train_tokenizer(corpus, arch["vocab_size"], spec.chat_template)
    processor = build_processor(tokenizer, min_pixels, max_pixels, spec)
    config = build_config(tokenizer, spec, arch)
    model = spec.transformers_class("model_class")(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return {"family": family, "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer)}
