"""lmdeploy pipeline (CUDA only), fed the prompt text rendered by ``tinyrs.chat.render``.

lmdeploy normally applies its own chat template to what it is given. Here the text is already rendered, so
the pipeline gets a chat template that adds nothing (an unregistered ``ChatTemplateConfig`` name becomes
lmdeploy's ``BaseChatTemplate`` with empty role markers), and each image block of the rendered text is
replaced by lmdeploy's ``IMAGE_TOKEN`` marker, which its Qwen2-VL preprocessor turns back into the same
block with the image's tokens. Greedy decoding: ``top_k=1``.

What a batch becomes is computed without the engine (``lmdeploy_prompts``, ``chat_template_config``), so
tests/test_eval_lmdeploy.py can run lmdeploy's own preprocessing on a CPU and compare its token ids with the
Hugging Face processor's.
"""
from __future__ import annotations

from pathlib import Path

from tinyrs.chat import render
from tinyrs.config import ConfigError
from tinyrs.eval.backends.base import Backend, Batch, require
from tinyrs.io import model_dir_of
from tinyrs.model.load import load_processor
from tinyrs.settings import EvalSettings

DTYPES = {"bf16": "bfloat16"}
PRERENDERED_TEMPLATE = "tinyrs-prerendered"
_MARK = "\x00tinyrs-question\x00"


def image_block(processor) -> str:
    """The text the model's chat template writes for one image (Qwen2-VL: ``<|vision_start|><|image_pad|><|vision_end|>``)."""
    def user_turn(content: list[dict]) -> str:
        return render(processor, [{"role": "user", "content": content}], add_generation_prompt=False)

    with_image = user_turn([{"type": "image"}, {"type": "text", "text": _MARK}])
    without = user_turn([{"type": "text", "text": _MARK}])
    start = next(i for i, (a, b) in enumerate(zip(with_image, without)) if a != b)
    block = with_image[start:with_image.index(_MARK)]
    if not block:
        raise ValueError("the model's chat template writes nothing for an image")
    return block


def chat_template_config(processor):
    """lmdeploy's chat template for pre-rendered text: an unregistered name, so ``BaseChatTemplate`` (adds nothing)."""
    from lmdeploy import ChatTemplateConfig

    return ChatTemplateConfig(model_name=PRERENDERED_TEMPLATE, stop_words=[processor.tokenizer.eos_token])


def lmdeploy_prompts(processor, batch: Batch, image_block: str, image_token: str) -> list[tuple[str, list]]:
    """What ``pipe.infer`` is given for ``batch``: per item, the rendered prompt with each image block replaced by
    lmdeploy's ``image_token``, and its images."""
    prompts = []
    for messages, images in batch:
        text = render(processor, messages, add_generation_prompt=True)
        if image_token in text or text.count(image_block) != len(images):
            raise ValueError(f"the rendered prompt has {text.count(image_block)} image blocks for {len(images)} "
                             f"images, or already contains lmdeploy's {image_token!r}: {text!r}")
        prompts.append((text.replace(image_block, image_token), list(images)))
    return prompts


class LMDeployBackend(Backend):
    name = "lmdeploy"

    def __init__(self, model_dir: str | Path, settings: EvalSettings):
        lmdeploy = require("lmdeploy", self.name)
        from lmdeploy.vl.constants import IMAGE_TOKEN

        if settings.precision not in DTYPES:
            raise ConfigError(f"eval.precision '{settings.precision}': the lmdeploy backend runs bf16 only")
        model_dir = model_dir_of(model_dir)
        self.processor = load_processor(model_dir)
        self.image_block = image_block(self.processor)
        self.image_token = IMAGE_TOKEN
        self.pipe = lmdeploy.pipeline(
            str(model_dir),
            backend_config=lmdeploy.PytorchEngineConfig(dtype=DTYPES[settings.precision]),
            chat_template_config=chat_template_config(self.processor),
        )
        self.gen_config = lmdeploy.GenerationConfig(
            max_new_tokens=settings.max_new_tokens, top_k=1, skip_special_tokens=True
        )

    def generate(self, batch: Batch) -> list[str]:
        prompts = lmdeploy_prompts(self.processor, batch, self.image_block, self.image_token)
        responses = self.pipe.infer(prompts, gen_config=self.gen_config)
        return [response.text for response in responses]
