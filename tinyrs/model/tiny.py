"""The demo world's base model: a few-million-parameter Qwen2-VL, built offline.

It stands where Qwen/Qwen2-VL-2B-Instruct stands in the real run: same architecture class, same
special tokens, same chat template, same processor, saved in Hugging Face format. The weights are
random; the byte-level BPE tokenizer is trained on the spot from the text of the training lists.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Iterator

# Qwen2-VL's chat template, verbatim: training, GRPO and eval all render through it.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# About 2.6 M parameters: big enough to learn the demo world, small enough to train on 2 CPU cores.
TINY_ARCH = {
    "text_hidden": 192, "text_layers": 4, "text_heads": 4, "text_kv_heads": 2, "text_intermediate": 512,
    "vision_embed": 96, "vision_depth": 3, "vision_heads": 4, "vision_mlp_ratio": 2, "vocab_size": 2048,
    "max_positions": 4096,
}

# Qwen2-VL-2B-Instruct's shapes (its config.json), for benchmarks with random weights where the Hub is out of reach.
QWEN2_VL_2B_ARCH = {
    "text_hidden": 1536, "text_layers": 28, "text_heads": 12, "text_kv_heads": 2, "text_intermediate": 8960,
    "vision_embed": 1280, "vision_depth": 32, "vision_heads": 16, "vision_mlp_ratio": 4, "vocab_size": 151936,
    "max_positions": 32768,
}


def corpus_from_lists(paths: Iterable[str | Path]) -> Iterator[str]:
    """Every conversation turn of the given VHM-style JSON lists."""
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            records = json.load(handle)
        for record in records:
            for turn in record.get("conversations", []):
                yield str(turn.get("value", ""))


def train_tokenizer(texts: Iterable[str], vocab_size: int):
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
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tokenizer


def build_processor(tokenizer, min_pixels: int, max_pixels: int):
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    image_processor = Qwen2VLImageProcessor(size=size)
    video_processor = Qwen2VLVideoProcessor(size=size)
    return Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def build_config(tokenizer, arch: dict = TINY_ARCH):
    from transformers import Qwen2VLConfig

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
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope_section},
        "tie_word_embeddings": True,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision_config = {
        "depth": arch["vision_depth"],
        "embed_dim": arch["vision_embed"],
        "hidden_size": arch["text_hidden"],  # the merger projects into the LLM's width
        "num_heads": arch["vision_heads"],
        "mlp_ratio": arch["vision_mlp_ratio"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    return Qwen2VLConfig(
        text_config=text_config, vision_config=vision_config, tie_word_embeddings=True, **ids
    )


def build_tiny_model(out_dir: str | Path, corpus: Iterable[str], min_pixels: int, max_pixels: int,
                     seed: int = 0, arch: dict = TINY_ARCH) -> dict:
    """Write a loadable Qwen2-VL model directory to ``out_dir``; returns a summary for the manifest."""
    import torch
    from transformers import GenerationConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    tokenizer = train_tokenizer(corpus, arch["vocab_size"])
    processor = build_processor(tokenizer, min_pixels, max_pixels)
    config = build_config(tokenizer, arch)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return {"parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer)}
