"""Per-module learning rates and weight-decay groups for Qwen2-VL, plus the freeze flags.

The groups are built by the trainer and handed to DeepSpeed as its client optimizer; the shipped
DeepSpeed configs carry no optimizer or scheduler block (see ``tinyrs.runtime.check_deepspeed_config``).
"""
from __future__ import annotations

MODULES = ("vision", "merger", "llm")


def module_of(name: str) -> str:
    """Which learning-rate family a parameter belongs to, by its Qwen2-VL module path."""
    if ".visual.merger." in f".{name}":
        return "merger"
    if ".visual." in f".{name}":
        return "vision"
    return "llm"


def no_decay(name: str, param) -> bool:
    """Biases and normalisation weights (all 1-D parameters) take no weight decay."""
    return param.ndim < 2 or "norm" in name.lower()


def apply_freezing(model, freeze_llm: bool, freeze_vision_tower: bool, tune_merger: bool) -> dict[str, int]:
    """Set ``requires_grad`` by module family; returns trainable parameter counts per family."""
    frozen = {"llm": freeze_llm, "vision": freeze_vision_tower, "merger": not tune_merger}
    counts = dict.fromkeys(MODULES, 0)
    for name, param in model.named_parameters():
        family = module_of(name)
        param.requires_grad_(not frozen[family])
        if param.requires_grad:
            counts[family] += param.numel()
    return counts


def param_groups(model, learning_rate: float, vision_lr: float, merger_lr: float, weight_decay: float) -> list[dict]:
    """Six groups at most: (vision, merger, llm) x (decay, no decay), trainable parameters only."""
    lrs = {"llm": learning_rate, "vision": vision_lr, "merger": merger_lr}
    groups: dict[tuple[str, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        family, decays = module_of(name), not no_decay(name, param)
        group = groups.setdefault((family, decays), {
            "params": [], "lr": lrs[family], "weight_decay": weight_decay if decays else 0.0,
            "name": f"{family}{'' if decays else '_no_decay'}",
        })
        group["params"].append(param)
    return [groups[key] for key in sorted(groups)]
