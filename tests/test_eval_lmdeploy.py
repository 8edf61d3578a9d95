"""The lmdeploy eval backend: what lmdeploy 0.18 turns our prompts into equals what the HF processor gives.

Runs in the eval-lmdeploy image's test environment (its lmdeploy, torch and transformers, on a CPU). lmdeploy's
engine needs CUDA (``PytorchEngineConfig`` accepts only cuda/ascend/maca/camb devices, and building the engine
asks the GPU for its name and runs a tensor on it), but everything between ``Pipeline.infer`` and the engine is
plain Python, and these tests run it with lmdeploy's own objects, built as ``VLAsyncEngine.__init__`` builds them:

- ``MultimodalProcessor.format_prompts``: the first step of ``Pipeline.infer``, our (prompt, images) pairs to
  OpenAI-style messages;
- ``get_chat_template`` on our ``ChatTemplateConfig`` (-> ``BaseChatTemplate`` with empty role markers),
  ``lmdeploy.tokenizer.Tokenizer`` and ``vl.engine.ImageEncoder`` (-> ``vl.model.qwen2.Qwen2VLModel``: its
  ``preprocess``, then ``to_pytorch`` = ``proc_messages`` + ``messages2prompt`` + ``to_pytorch_aux``), joined by
  ``MultimodalProcessor.get_prompt_input``, which ``AsyncEngine.preprocess`` awaits for every request: its
  ``prompt``, ``input_ids`` and ``multimodal`` are what the engine is sent;
- ``pytorch.models.qwen2_vl.Qwen2VLInputProcessor.preprocess_input``: what the engine does first with them
  (``Engine._on_add_message``): the image spans its model fills with vision features.

The one CUDA call on that path is the bf16 capability query of ``ImageEncoder.__init__``
(``vl/engine.py`` ``_resolve_mm_feature_dtype`` -> ``lmdeploy.utils.is_bf16_supported`` ->
``torch.cuda.current_device()``); it is answered as the cluster's GPUs answer it. Its result only sets the
feature dtype of lmdeploy's new-style preprocessors, which Qwen2-VL's (legacy) preprocessor does not use.
"""
from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from tinyrs.chat import prompt_messages, render, system_prompt
from tinyrs.config import load_config, typed_eval_settings
from tinyrs.eval.backends.lmdeploy import DTYPES, chat_template_config, image_block, lmdeploy_prompts
from tinyrs.eval.prompts import STYLES, build_messages, question_text
from tinyrs.eval.tasks import task_registry
from tinyrs.model.load import load_processor
from tinyrs.settings import EvalSettings

REPO = Path(__file__).resolve().parent.parent

# (id, stage whose prompt style is used, task, VHM question, image sizes): one image of several sizes (square,
# wide, tall, larger than the processor's max_pixels), every prompt style, and a two-image prompt.
SAMPLES = [
    ("square", "sft", "cls_aid", "<image>\n{CLS} What is the category of this image?", [(112, 112)]),
    ("wide", "base", "vqa_LR-pre", "<image>\nIs there a road in the image?", [(150, 90)]),
    ("tall", "cot", "rs_vg", "<image>\n{VG} Where is the storage tank?", [(64, 200)]),
    ("downscaled", "sft", "lhrs_bench", "Which land cover dominates the scene?", [(300, 140)]),
    ("two_images", "sft", "cls_aid", "{CLS} Are these two images of the same category?", [(112, 112), (150, 90)]),
]


def _messages(settings: EvalSettings, task_key: str, question: str, n_images: int) -> list[dict]:
    """The eval prompt, built as ``tinyrs.eval.runner`` builds it (several images: the same turn, more images)."""
    query = question_text(question, task_registry(settings.tasks)[task_key], settings)
    if n_images == 1:
        return build_messages(query, settings)
    return prompt_messages(query, system_prompt(settings.chat, STYLES[settings.prompt_style][1]), n_images)


def _images(sizes):
    from PIL import Image

    return [Image.new("RGB", size, (37 * i + 20, 90, 160)) for i, size in enumerate(sizes)]


def _runs(ids: list[int], token: int) -> list[tuple[int, int]]:
    """(start, end) of each maximal run of ``token`` in ``ids``."""
    runs, start = [], None
    for position, value in enumerate([*ids, None]):
        if value == token and start is None:
            start = position
        elif value != token and start is not None:
            runs.append((start, position))
            start = None
    return runs


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config([REPO / "config.yaml"])


@pytest.fixture(scope="module")
def processor(tiny_model_dir):
    return load_processor(tiny_model_dir)


@pytest.fixture(scope="module")
def lmdeploy_side(tiny_model_dir, processor):
    """lmdeploy's request preprocessing and the engine's Qwen2-VL input processor, for the tiny model."""
    import lmdeploy
    import lmdeploy.vl.engine
    from lmdeploy.model import get_chat_template
    from lmdeploy.pytorch.models.qwen2_vl import Qwen2VLInputProcessor
    from lmdeploy.serve.processors import MultimodalProcessor
    from lmdeploy.tokenizer import Tokenizer

    model_path = str(tiny_model_dir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lmdeploy.vl.engine, "is_bf16_supported", lambda device_type="cuda": True)  # H100/H200
        encoder = lmdeploy.vl.engine.ImageEncoder(
            model_path, "pytorch", None, backend_config=lmdeploy.PytorchEngineConfig(dtype=DTYPES["bf16"]))
    chat_template = get_chat_template(model_path, chat_template_config(processor))
    prompt_processor = MultimodalProcessor(Tokenizer(model_path), chat_template, vl_encoder=encoder, backend="pytorch")
    return {"prompt_processor": prompt_processor, "encoder": encoder, "chat_template": chat_template,
            "engine_input": Qwen2VLInputProcessor(encoder.model.hf_config)}


def _lmdeploy_request(lmdeploy_side, prompts: list) -> list[dict]:
    """What ``Pipeline.infer(prompts)`` sends the engine per prompt: ``AsyncEngine.preprocess``'s prompt input."""
    from lmdeploy.serve.processors import MultimodalProcessor

    async def preprocess(messages):
        return await lmdeploy_side["prompt_processor"].get_prompt_input(
            prompt=messages, do_preprocess=True, adapter_name=None, tools=None, reasoning_effort=None,
            chat_template_kwargs={}, media_io_kwargs=None, mm_processor_kwargs=None)

    return [asyncio.run(preprocess(messages)) for messages in MultimodalProcessor.format_prompts(prompts)]


@pytest.mark.images("eval-lmdeploy")
def test_prerendered_template_adds_nothing(lmdeploy_side):
    """Our ChatTemplateConfig becomes lmdeploy's BaseChatTemplate with empty role markers: text passes as it is."""
    from lmdeploy.model import BaseChatTemplate

    template = lmdeploy_side["chat_template"]
    assert type(template) is BaseChatTemplate
    assert template.stop_words == ["<|im_end|>"]
    text = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert template.messages2prompt([{"role": "user", "content": text}]) == text


@pytest.mark.images("eval-lmdeploy")
@pytest.mark.parametrize("case", SAMPLES, ids=[sample[0] for sample in SAMPLES])
def test_lmdeploy_input_ids_equal_the_processors(case, config, processor, lmdeploy_side):
    """Prompt text, token ids, image tokens, grids and pixels lmdeploy would feed the model = the HF processor's."""
    import torch
    from lmdeploy.vl.constants import IMAGE_TOKEN

    _, stage, task_key, question, sizes = case
    messages, images = _messages(typed_eval_settings(config, stage), task_key, question, len(sizes)), _images(sizes)
    text = render(processor, messages, add_generation_prompt=True)
    expected = processor(text=[text], images=images, return_tensors="pt")
    expected_ids = expected["input_ids"][0].tolist()
    pad_id = processor.tokenizer.convert_tokens_to_ids(processor.image_token)
    merge = processor.image_processor.merge_size ** 2
    pad_runs = _runs(expected_ids, pad_id)
    assert len(pad_runs) == len(images)

    prompts = lmdeploy_prompts(processor, [(messages, images)], image_block(processor), IMAGE_TOKEN)
    assert prompts[0][0].count(IMAGE_TOKEN) == len(images) and prompts[0][1] == images
    (request,) = _lmdeploy_request(lmdeploy_side, prompts)

    assert request["prompt"] == text  # lmdeploy's prompt after its chat template and image-block expansion
    assert request["input_ids"] == expected_ids
    items = request["multimodal"]
    assert len(items) == len(images)
    assert sum(int(item["image_tokens"]) for item in items) == request["input_ids"].count(pad_id) \
        == int(expected["image_grid_thw"].prod(dim=1).sum()) // merge
    for item, grid, (start, end) in zip(items, expected["image_grid_thw"], pad_runs):
        assert item["image_token_id"] == pad_id
        assert item["image_grid_thw"].tolist() == [grid.tolist()]
        assert (item["offset"], item["offset"] + int(item["image_tokens"])) == (start, end)
    pixels = torch.cat([item["pixel_values"] for item in items])
    assert pixels.shape == expected["pixel_values"].shape
    assert torch.equal(pixels, expected["pixel_values"])

    # the engine's first step: the spans its model fills with each image's vision features
    engine_input = lmdeploy_side["engine_input"].preprocess_input(request["input_ids"], items)
    assert engine_input.input_ids == expected_ids
    spans = engine_input.input_multimodals["image"]
    assert [(span.start, span.end) for span in spans] == pad_runs
    assert [span.meta["grid_thw"].tolist() for span in spans] == [[grid.tolist()]
                                                                  for grid in expected["image_grid_thw"]]
    assert [tuple(span.data.shape) for span in spans] == [tuple(item["pixel_values"].shape) for item in items]


@pytest.mark.images("eval-lmdeploy")
def test_a_wrong_image_block_is_caught(config, processor, lmdeploy_side):
    """The comparison above is sharp: marking only ``<|image_pad|>`` (not the whole block) gives other ids."""
    from lmdeploy.vl.constants import IMAGE_TOKEN

    messages, images = build_messages("{CLS} What is this?", typed_eval_settings(config, "sft")), _images([(150, 90)])
    text = render(processor, messages, add_generation_prompt=True)
    expected_ids = processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()
    wrong = [(text.replace(processor.image_token, IMAGE_TOKEN), images)]
    (request,) = _lmdeploy_request(lmdeploy_side, wrong)
    assert request["prompt"].count("<|vision_start|>") == 2 and request["input_ids"] != expected_ids
    with pytest.raises(ValueError, match="image blocks"):
        lmdeploy_prompts(processor, [(messages, images + images)], image_block(processor), IMAGE_TOKEN)


@pytest.mark.images("eval-lmdeploy")
def test_generate_calls_pipeline_infer(tiny_model_dir, config, processor, monkeypatch):
    """The backend hands ``pipe.infer`` exactly ``lmdeploy_prompts``' output, with our template and greedy config."""
    import lmdeploy
    from lmdeploy.vl.constants import IMAGE_TOKEN

    from tinyrs.eval.backends.lmdeploy import LMDeployBackend

    calls = {}

    class Response:
        def __init__(self, text):
            self.text = text

    class FakePipeline:  # no __call__: the deprecated ``pipe(...)`` would fail
        def infer(self, prompts, gen_config=None):
            calls["infer"] = (prompts, gen_config)
            return [Response(f"answer {i}") for i in range(len(prompts))]

    def fake_pipeline(model_path, backend_config=None, chat_template_config=None):
        calls["pipeline"] = (model_path, backend_config, chat_template_config)
        return FakePipeline()

    monkeypatch.setattr(lmdeploy, "pipeline", fake_pipeline)
    settings = replace(typed_eval_settings(config, "sft"), max_new_tokens=7)
    backend = LMDeployBackend(tiny_model_dir, settings)
    batch = [(_messages(settings, "cls_aid", "<image>\n{CLS} What is this?", 1), _images([size]))
             for size in [(112, 112), (64, 200)]]
    assert backend.generate(batch) == ["answer 0", "answer 1"]

    _, backend_config, template_config = calls["pipeline"]
    assert backend_config.dtype == "bfloat16" and template_config == chat_template_config(processor)
    prompts, gen_config = calls["infer"]
    assert prompts == lmdeploy_prompts(processor, batch, image_block(processor), IMAGE_TOKEN)
    assert (gen_config.max_new_tokens, gen_config.top_k, gen_config.skip_special_tokens) == (7, 1, True)
