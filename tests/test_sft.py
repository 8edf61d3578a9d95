"""The SFT-family trainer's parts: labels, pixel limits, skips, LR groups, freezing, DeepSpeed configs."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tinyrs import chat, runtime
from tinyrs.model.load import load_model, load_processor
from tinyrs.sft import optim
from tinyrs.sft.batching import IGNORE_INDEX, SampleEncoder, assistant_label_mask, collate

CHAT = {"system_prompt": "You are a helpful assistant.", "reasoning_system_prompt": "Think first.",
        "reasoning_tag": "reasoning", "answer_tag": "answer"}


@pytest.fixture()
def image_file(tmp_path):
    def make(size=(224, 224), name="img.jpg"):
        path = tmp_path / name
        Image.new("RGB", size, (10, 120, 200)).save(path)
        return str(path)
    return make


def record(images, turns):
    conversations = []
    for question, answer in turns:
        conversations += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    return {"images": images, "conversations": conversations}


def test_label_mask_marks_only_assistant_turns():
    header, end = [7, 8, 9], 2
    ids = [1, 7, 8, 9, 5, 6, 2, 3, 4, 7, 8, 9, 10, 2, 11]
    mask = assistant_label_mask(ids, header, end)
    assert [i for i, m in zip(ids, mask) if m] == [5, 6, 2, 10, 2]


def test_labels_are_exactly_the_assistant_replies(tiny_model_dir, image_file):
    processor = load_processor(tiny_model_dir)
    encoder = SampleEncoder(processor, CHAT["system_prompt"], max_length=4096)
    sample = encoder(record([image_file()], [("<image>\n{CLS} What is this?", "water"),
                                             ("{VQA} Is there a ship?", "no")]))
    labelled = sample["input_ids"][sample["labels"] != IGNORE_INDEX]
    assert processor.tokenizer.decode(labelled) == "water<|im_end|>no<|im_end|>"


def test_pixel_limits_bound_visual_tokens(tiny_model_dir, image_file):
    """REFERENCE.md §3.2: the reference's pixel limits had no effect. Ours bound the visual tokens."""
    image_pad = "<|image_pad|>"
    for max_pixels in (56 * 56, 112 * 112):
        processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=max_pixels)
        encoder = SampleEncoder(processor, None, max_length=100_000)
        sample = encoder(record([image_file((1000, 800))], [("<image>\nWhat?", "x")]))
        pad_id = processor.tokenizer.convert_tokens_to_ids(image_pad)
        visual_tokens = int((sample["input_ids"] == pad_id).sum())
        assert 0 < visual_tokens <= max_pixels // (28 * 28)


def test_over_long_samples_are_skipped_and_counted_not_truncated(tiny_model_dir, image_file):
    processor = load_processor(tiny_model_dir)
    short = record([], [("hi", "ok")])
    short_length = SampleEncoder(processor, None, max_length=10_000)(short)["input_ids"].shape[0]
    encoder = SampleEncoder(processor, None, max_length=short_length + 5)
    long = record([image_file()], [("<image>\n" + "describe " * 50, "a long answer")])
    batch = collate([encoder(long), encoder(short)], processor.tokenizer.pad_token_id)
    assert encoder.skipped_too_long == 1 and batch["tinyrs_skipped"] == 1
    assert batch["input_ids"].shape[0] == 1 and "pixel_values" not in batch


def test_collate_pads_and_keeps_visual_patches_in_order(tiny_model_dir, image_file):
    processor = load_processor(tiny_model_dir)
    encoder = SampleEncoder(processor, None, max_length=4096)
    samples = [encoder(record([image_file((224, 224), "a.jpg")], [("<image>\nq", "a")])),
               encoder(record([image_file((112, 224), "b.jpg")], [("<image>\nlonger question here", "b")]))]
    batch = collate(samples, processor.tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["pixel_values"].shape[0] == sum(int(s["image_grid_thw"].prod()) for s in samples)
    assert batch["attention_mask"].sum().item() == sum(s["input_ids"].shape[0] for s in samples)
    model = load_model(tiny_model_dir)
    assert torch.isfinite(model(**{k: v for k, v in batch.items() if k != "tinyrs_skipped"}).loss)


def test_param_groups_carry_per_module_learning_rates_and_no_decay(tiny_model_dir):
    model = load_model(tiny_model_dir)
    optim.apply_freezing(model, freeze_llm=False, freeze_vision_tower=False, tune_merger=True)
    groups = {g["name"]: g for g in optim.param_groups(model, 1e-5, 2e-6, 3e-5, 0.1)}
    assert set(groups) == {"llm", "llm_no_decay", "vision", "vision_no_decay", "merger", "merger_no_decay"}
    assert groups["vision"]["lr"] == 2e-6 and groups["merger"]["lr"] == 3e-5 and groups["llm"]["lr"] == 1e-5
    assert all(g["weight_decay"] == 0.0 for n, g in groups.items() if n.endswith("no_decay"))
    assert all(p.ndim >= 2 for p in groups["llm"]["params"])
    names = {id(p): n for n, p in model.named_parameters()}
    assert all("merger" in names[id(p)] for p in groups["merger"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))


def test_freeze_flags(tiny_model_dir):
    model = load_model(tiny_model_dir)
    counts = optim.apply_freezing(model, freeze_llm=True, freeze_vision_tower=True, tune_merger=True)
    assert counts["llm"] == 0 and counts["vision"] == 0 and counts["merger"] > 0
    groups = optim.param_groups(model, 1e-5, 2e-6, 1e-5, 0.1)
    assert {g["name"].split("_")[0] for g in groups} == {"merger"}


def test_shipped_deepspeed_configs_have_no_optimizer_or_scheduler(tmp_path):
    for name in ("zero2", "zero3", "zero3_offload"):
        config = runtime.check_deepspeed_config(runtime.deepspeed_config_path(name))
        assert "optimizer" not in config and "scheduler" not in config
    bad = tmp_path / "ds.json"
    bad.write_text(json.dumps({"optimizer": {"type": "AdamW"}, "zero_optimization": {"stage": 3}}))
    with pytest.raises(ValueError, match="per-module learning"):
        runtime.deepspeed_config_path(str(bad))


def test_one_chat_template_for_training_grpo_and_eval(tiny_model_dir):
    """REFERENCE.md §3.8: one template. The trained text starts with exactly the eval/GRPO prompt."""
    from trl.data_utils import apply_chat_template

    from tinyrs.grpo.dataset import with_system_prompt

    processor = load_processor(tiny_model_dir)
    system = chat.system_prompt(CHAT, "reasoning")
    question = "{CLS} What is the category of this image?"
    answer = chat.reasoning_text("Blue, smooth.", "water", CHAT)
    trained = chat.render(processor, chat.to_messages(
        [{"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": answer}], system), False)
    eval_prompt = chat.render(processor, chat.prompt_messages(question, system), True)
    grpo_prompt = with_system_prompt([{"role": "user", "content": [{"type": "image"},
                                                                   {"type": "text", "text": question}]}], system)
    grpo_text = apply_chat_template({"prompt": grpo_prompt}, processor)["prompt"]
    assert trained == eval_prompt + answer + "<|im_end|>\n"
    assert grpo_text == eval_prompt
    assert "\n<|im_end|>" not in trained  # the reference's SFT template put a newline before <|im_end|>
