"""The backend interface and the choice of backend by the eval settings' ``backend``.

A batch is a list of ``(messages, images)``: chat messages from ``tinyrs.eval.prompts`` and the PIL images
they refer to. Every backend renders the messages with ``tinyrs.chat.render`` (the model's own chat
template), decodes greedily, and returns the new text only, without special tokens.
"""
from __future__ import annotations

import abc
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

from tinyrs.config import ConfigError
from tinyrs.settings import EvalSettings

Batch = Sequence[tuple[list[dict], list[Any]]]
BACKENDS = {
    "transformers": ("tinyrs.eval.backends.transformers", "TransformersBackend"),
    "vllm": ("tinyrs.eval.backends.vllm", "VLLMBackend"),
    "lmdeploy": ("tinyrs.eval.backends.lmdeploy", "LMDeployBackend"),
}


class Backend(abc.ABC):
    name: str
    # An engine that sizes itself for a fixed number of images per prompt (vLLM's limit_mm_per_prompt) says so
    # here; make_backend then passes it the most images any sample to evaluate has (bi-temporal pairs: 2).
    limits_images_per_prompt = False

    @abc.abstractmethod
    def generate(self, batch: Batch) -> list[str]:
        """One completion per ``(messages, images)`` item, in order."""


def require(package: str, backend: str) -> ModuleType:
    """Import an optional engine, or say plainly what is missing and what to do."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise ConfigError(
            f"eval.backend is '{backend}' but the '{package}' package cannot be imported ({err}); "
            f"install it on a CUDA machine (pip install {package}) or set eval.backend: transformers"
        ) from err


def make_backend(settings: EvalSettings, model_dir: str | Path, max_images_per_prompt: int = 1) -> Backend:
    name = settings.backend
    if name not in BACKENDS:
        raise ConfigError(f"eval.backend: unknown backend '{name}'; expected one of {sorted(BACKENDS)}")
    module_name, class_name = BACKENDS[name]
    backend_class = getattr(importlib.import_module(module_name), class_name)
    if backend_class.limits_images_per_prompt:
        return backend_class(model_dir, settings, max_images_per_prompt)
    return backend_class(model_dir, settings)
