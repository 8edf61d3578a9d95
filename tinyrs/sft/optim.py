"""Per-module learning rates and weight-decay groups (vision tower, merger, LLM), plus the freeze flags.

Which parameter belongs to which module is the model family's knowledge (``tinyrs.model.families``), looked up
from the model's own config. The groups are built by the trainer and handed to DeepSpeed as its client optimizer;
the shipped DeepSpeed configs carry no optimizer or scheduler block (see ``tinyrs.runtime.check_deepspeed_config``).
"""
from __future__ import annotations

from tinyrs.model.families import family_of

MODULES = ("vision", "merger", "llm")


def no_decay(name: str, param) -> bool:
    """Biases and normalisation weights (all 1-D parameters) take no weight decay."""
    return param.ndim < 2 or "norm" in name.lower()


def apply_freezing(model, freeze_llm: bool, freeze_vision_tower: bool, tune_merger: bool) -> dict[str, int]:
    """Set ``requires_grad`` by module; returns trainable parameter counts per module."""
    frozen = {"llm": freeze_llm, "vision": freeze_vision_tower, "merger": not tune_merger}
    counts = dict.fromkeys(MODULES, 0)
    module_of = family_of(model.config).module_of
    for name, param in model.named_parameters():
        module = module_of(name)
        param.requires_grad_(not frozen[module])
        if param.requires_grad:
            counts[module] += param.numel()
    return counts


def param_groups(model, learning_rate: float, vision_lr: float, merger_lr: float, weight_decay: float) -> list[dict]:
    """Six groups at most: (vision, merger, llm) x (decay, no decay), trainable parameters only."""
    lrs = {"llm": learning_rate, "vision": vision_lr, "merger": merger_lr}
    groups: dict[tuple[str, bool], dict] = {}
    module_of = family_of(model.config).module_of
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        module, decays = module_of(name), not no_decay(name, param)
        group = groups.setdefault((module, decays), {
            "params": [], "lr": lrs[module], "weight_decay": weight_decay if decays else 0.0,
            "name": f"{module}{'' if decays else '_no_decay'}",
        })
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]
