"""Hugging Face ``model.generate``: batched, left-padded, greedy. Runs anywhere (the CPU demo included)."""
from __future__ import annotations

from pathlib import Path

from tinyrs.chat import render
from tinyrs.eval.backends.base import Backend, Batch
from tinyrs.model.load import load_model, load_processor
from tinyrs.settings import EvalSettings


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model_dir: str | Path, settings: EvalSettings):
        import torch

        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = load_processor(model_dir)
        # Decoder-only generation appends after the last position: pad on the left so every prompt ends there.
        self.processor.tokenizer.padding_side = "left"
        self.model = load_model(model_dir, settings.precision, settings.attn_implementation)
        self.model.to(self.device).eval()
        self.max_new_tokens = settings.max_new_tokens

    def generate(self, batch: Batch) -> list[str]:
        import torch

        texts = [render(self.processor, messages, add_generation_prompt=True) for messages, _ in batch]
        images = [image for _, item_images in batch for image in item_images]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)
