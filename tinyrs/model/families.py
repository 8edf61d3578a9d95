"""Base-model families: everything tinyrs knows that differs between Qwen2-VL and Qwen2.5-VL, in one table.

A family is chosen once, by ``base_model.family``: it says which tiny model ``tinyrs model tiny`` builds and which
kind of model ``tinyrs model fetch`` must find at ``base_model.repo``. From then on a model directory names its own
family (``model_type`` in its config.json), so the stages after it (SFT, GRPO, eval) load any family through the
same Auto classes, and the per-module learning rates and freeze flags look the family up from the model itself.

What the two share in transformers 5.19 (tests/test_model_families.py checks the first two on the tiny models):
the module paths (``model.visual.merger``, the rest of ``model.visual``, ``model.language_model``, and ``lm_head``
tied to the embeddings), ``get_rope_index(input_ids, mm_token_type_ids, image_grid_thw=..., attention_mask=...)``
(Qwen2.5-VL's also takes ``second_per_grid_ts``, which spaces video frames in time and is not used for still
images), the image and video processors (``Qwen2VLImageProcessor``, ``Qwen2VLVideoProcessor``: transformers' auto
mappings) and the image placeholder ``<|image_pad|>`` (both processors' default). What differs is the
vision tower's configuration (Qwen2.5-VL: window attention with ``window_size`` and ``fullatt_block_indexes``,
RMSNorm, a SwiGLU MLP of ``intermediate_size``, ``hidden_size``/``out_hidden_size`` where Qwen2-VL has
``embed_dim``/``hidden_size``), the model, config and processor classes, and ``model_type``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tinyrs.config import ConfigError

# The tiny models' chat template: Qwen2-VL's, verbatim. A real checkpoint brings its own in its processor files, and
# tinyrs always renders through the model's own (tinyrs.chat.render), never this one.
QWEN_VL_CHAT_TEMPLATE = (
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

# Learning-rate module of a parameter, by a piece of its name: first match wins, anything else is the LLM.
# Matched anywhere in the name, so wrappers that prefix it (PEFT's ``base_model.model.``) change nothing.
QWEN_VL_MODULES = (("merger", ".visual.merger."), ("vision", ".visual."))

FULL_ATTENTION_EVERY = 8  # Qwen2.5-VL's released vision towers: full attention in every 8th block, the last included


def qwen2_vl_vision(arch: dict) -> dict:
    """Qwen2-VL's vision tower for an architecture of ``tinyrs.model.tiny`` (``TINY_ARCH``): a ViT with LayerNorm
    and a GELU MLP of ``embed_dim * mlp_ratio``, full attention in every block."""
    return {
        "depth": arch["vision_depth"],
        "embed_dim": arch["vision_embed"],
        "hidden_size": arch["text_hidden"],  # the merger projects into the LLM's width
        "num_heads": arch["vision_heads"],
        "mlp_ratio": arch["vision_mlp_ratio"],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


def qwen2_5_vl_vision(arch: dict) -> dict:
    """Qwen2.5-VL's vision tower: RMSNorm, a SwiGLU MLP, attention within windows of ``window_size`` pixels except
    in the full-attention blocks (every ``FULL_ATTENTION_EVERY``-th, counted back from the last)."""
    depth = arch["vision_depth"]
    return {
        "depth": depth,
        "hidden_size": arch["vision_embed"],
        "out_hidden_size": arch["text_hidden"],  # the merger projects into the LLM's width
        "intermediate_size": arch["vision_embed"] * arch["vision_mlp_ratio"],
        "num_heads": arch["vision_heads"],
        "window_size": arch["vision_window"],
        "fullatt_block_indexes": sorted(range(depth - 1, -1, -FULL_ATTENTION_EVERY)),
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }


@dataclass(frozen=True)
class Family:
    """One base-model family: its transformers classes, the tiny model's vision tower, the LR modules."""

    name: str                # the value of base_model.family
    model_type: str          # config.json's model_type: how a saved model names its family
    model_class: str         # transformers' class (AutoModelForImageTextToText's choice for model_type)
    config_class: str
    processor_class: str
    example_repo: str        # an instruct checkpoint of the family on the Hub, for messages
    vision_config: Callable[[dict], dict]  # architecture (tinyrs.model.tiny) -> vision_config of config_class
    chat_template: str = QWEN_VL_CHAT_TEMPLATE  # the tiny model's
    modules: tuple[tuple[str, str], ...] = QWEN_VL_MODULES

    def module_of(self, parameter_name: str) -> str:
        """The learning-rate module (``vision``, ``merger`` or ``llm``) a parameter belongs to."""
        name = f".{parameter_name}"
        return next((module for module, piece in self.modules if piece in name), "llm")

    def transformers_class(self, attribute: str):
        """The transformers class named in ``attribute`` (``model_class``, ``config_class``, ``processor_class``)."""
        import transformers

        return getattr(transformers, getattr(self, attribute))


FAMILIES = {family.name: family for family in (
    Family("qwen2-vl", "qwen2_vl", "Qwen2VLForConditionalGeneration", "Qwen2VLConfig", "Qwen2VLProcessor",
           "Qwen/Qwen2-VL-2B-Instruct", qwen2_vl_vision),
    Family("qwen2.5-vl", "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLConfig",
           "Qwen2_5_VLProcessor", "Qwen/Qwen2.5-VL-3B-Instruct", qwen2_5_vl_vision),
)}
DEFAULT_FAMILY = "qwen2-vl"


def family_named(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"unknown model family '{name}': expected one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of(config) -> Family:
    """The family of a model, from its transformers config: by ``model_type``."""
    model_type = getattr(config, "model_type", None)
    for family in FAMILIES.values():
        if family.model_type == model_type:
            return family
    raise ConfigError(
        f"model type '{model_type}' is none of the families tinyrs knows "
        f"({', '.join(f'{f.name}: {f.model_type}' for f in FAMILIES.values())}); a new family is an entry of "
        f"tinyrs.model.families.FAMILIES")
