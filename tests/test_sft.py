"""The SFT-family trainer's parts: labels, pixel limits, skips, LR groups, freezing, DeepSpeed configs."""
from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from tinyrs import chat, runtime
from tinyrs.model.families import FAMILIES
from tinyrs.model.load import load_model, load_processor
from tinyrs.settings import ChatSettings
from tinyrs.sft import optim
from tinyrs.sft.batching import (IGNORE_INDEX, SampleEncoder, assistant_label_mask, collate, estimated_lengths,
                                 packed_position_ids)

EACH_FAMILY = pytest.mark.parametrize("family", list(FAMILIES))
CHAT = ChatSettings(system_prompt="You are a helpful assistant.", reasoning_system_prompt="Think first.",
                    reasoning_tag="reasoning", answer_tag="answer")


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
    encoder = SampleEncoder(processor, CHAT.system_prompt, max_length=4096)
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


def test_undecodable_images_are_skipped_apart_from_over_long_samples(tiny_model_dir, image_file, tmp_path):
    from tinyrs.sft.batching import UnreadableImage, UnreadableImageError, load_images

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="broken.jpg: image does not decode: UnidentifiedImageError"):
        load_images([image_file(), str(broken)])
    processor = load_processor(tiny_model_dir)
    encoder = SampleEncoder(processor, None, max_length=4096)
    skip = UnreadableImage(3, "UCM", str(broken), "UnidentifiedImageError: cannot identify image file")
    batch = collate([encoder(record([image_file()], [("<image>\nq", "a")])), skip, None],
                    processor.tokenizer.pad_token_id)
    assert batch["tinyrs_skipped"] == 1 and batch["tinyrs_unreadable"] == [skip]
    assert batch["input_ids"].shape[0] == 1


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
    assert torch.isfinite(model(**_model_inputs(batch)).loss)


@EACH_FAMILY
def test_a_two_image_sample_keeps_its_images_in_order(tiny_model_of, family, tmp_path):
    """A bi-temporal record's images reach the model in the record's order: swapping them swaps the visual patches
    and the image-token runs, and changes the model's output."""
    processor = load_processor(tiny_model_of(family), min_pixels=3136, max_pixels=112 * 112)
    encoder = SampleEncoder(processor, None, max_length=4096)
    before, after = str(tmp_path / "before.png"), str(tmp_path / "after.png")
    Image.new("RGB", (56, 56), (30, 60, 200)).save(before)
    Image.new("RGB", (112, 56), (200, 40, 40)).save(after)
    turns = [("<image>\n<image>\nWhat changed?", "a new building")]
    pair, swapped = encoder(record([before, after], turns)), encoder(record([after, before], turns))
    first = int(pair["image_grid_thw"][0].prod())
    assert torch.equal(swapped["image_grid_thw"], pair["image_grid_thw"].flip(0))
    assert torch.equal(swapped["pixel_values"], torch.cat([pair["pixel_values"][first:], pair["pixel_values"][:first]]))
    image_id = processor.image_token_id
    runs = [[len(run) for run in "".join("x" if token == image_id else " " for token in sample["input_ids"].tolist())
             .split()] for sample in (pair, swapped)]
    assert runs[0] == [first // 4, int(pair["image_grid_thw"][1].prod()) // 4] == runs[1][::-1]
    model = load_model(tiny_model_of(family), "fp32", "sdpa")
    losses = [model(**_model_inputs(collate([sample], processor.tokenizer.pad_token_id))).loss for sample in
              (pair, swapped)]
    assert not torch.allclose(losses[0], losses[1])


PACKED_TOLERANCE = 1e-5  # relative, fp32 SDPA on the CPU; measured differences are ~1e-7


def _mixed_samples(tiny_model_dir, image_file):
    """Samples of different lengths with images of different grids, one text-only and one two-image."""
    processor = load_processor(tiny_model_dir, min_pixels=3136, max_pixels=112 * 112)
    encoder = SampleEncoder(processor, CHAT.system_prompt, max_length=4096)
    samples = [
        encoder(record([image_file((112, 112), "a.jpg")], [("<image>\n{CLS} What is this?", "water")])),
        encoder(record([], [("How many classes are there?", "four, in a longer reply than the others")])),
        encoder(record([image_file((56, 112), "b.jpg")], [("<image>\nq", "a"), ("and then?", "forest")])),
        encoder(record([image_file((112, 56), "c.jpg"), image_file((84, 84), "d.jpg")],
                       [("<image>\n<image>\nSame scene?", "no")])),
    ]
    return processor, samples


def _model_inputs(batch: dict) -> dict:
    return {k: v for k, v in batch.items() if not k.startswith("tinyrs_")}


@EACH_FAMILY
def test_packed_positions_are_each_samples_own_mrope_positions(tiny_model_of, family, image_file):
    processor, samples = _mixed_samples(tiny_model_of(family), image_file)
    model = load_model(tiny_model_of(family))
    packed = collate(samples, processor.tokenizer.pad_token_id, padding_free=True)
    positions = packed_position_ids(model.model, packed["input_ids"], packed["mm_token_type_ids"],
                                    packed["image_grid_thw"], packed["tinyrs_sample_lengths"])
    assert positions.shape == (4, 1, sum(packed["tinyrs_sample_lengths"]))
    start, grids = 0, iter(packed["image_grid_thw"])
    for sample in samples:
        n = sample["input_ids"].shape[0]
        own_grids = [next(grids) for _ in range(int(sample.get("image_grid_thw", torch.empty(0, 3)).shape[0]))]
        alone, _ = model.model.get_rope_index(sample["input_ids"][None], sample["mm_token_type_ids"][None],
                                              image_grid_thw=torch.stack(own_grids) if own_grids else None)
        assert torch.equal(positions[1:, 0, start:start + n], alone[:, 0])
        assert torch.equal(positions[0, 0, start:start + n], torch.arange(n))
        start += n


@EACH_FAMILY
def test_packed_and_padded_batches_give_the_same_loss_and_gradients(tiny_model_of, family, image_file):
    """Padding-free training is the padded computation without the padding: equal loss and gradients
    to PACKED_TOLERANCE, in every base-model family. Packing without per-sample positions visibly changes the loss
    (the check can fail)."""
    processor, samples = _mixed_samples(tiny_model_of(family), image_file)
    model = load_model(tiny_model_of(family), "fp32", "sdpa")
    padded = collate(samples, processor.tokenizer.pad_token_id)
    packed = collate(samples, processor.tokenizer.pad_token_id, padding_free=True)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == padded["attention_mask"].sum() == packed["tinyrs_tokens"]

    def loss_and_grads(inputs):
        model.zero_grad()
        loss = model(**inputs).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    padded_loss, padded_grads = loss_and_grads(_model_inputs(padded))
    positions = packed_position_ids(model.model, packed["input_ids"], packed["mm_token_type_ids"],
                                    packed["image_grid_thw"], packed["tinyrs_sample_lengths"])
    packed_loss, packed_grads = loss_and_grads({**_model_inputs(packed), "position_ids": positions,
                                                "use_cache": False})
    assert torch.allclose(packed_loss, padded_loss, rtol=PACKED_TOLERANCE, atol=0)
    assert padded_grads.keys() == packed_grads.keys()
    for name, grad in padded_grads.items():
        assert torch.allclose(packed_grads[name], grad, rtol=1e-4, atol=1e-6), name

    naive_loss = model(**_model_inputs(packed)).loss.detach()  # one long sequence: attends across samples
    assert abs(naive_loss - padded_loss) / padded_loss > 10 * PACKED_TOLERANCE


def test_length_estimates_order_records_like_their_token_counts(tiny_sft_manifest):
    from tinyrs.data.manifest import open_manifest

    manifest = open_manifest(tiny_sft_manifest)
    chars, images = manifest.text_chars_and_images()
    for position in (0, len(manifest) // 2, len(manifest) - 1):
        row = manifest[position]
        assert chars[position] == sum(len(turn["value"]) for turn in row["conversations"])
        assert images[position] == len(row["images"])
    lengths = estimated_lengths(manifest, visual_tokens_per_image=16)
    assert len(lengths) == len(manifest) and min(lengths) >= 16


def _module_parameters(model) -> dict[str, set[int]]:
    """The parameters of each LR module, by the module objects (not by names): the vision tower without its merger,
    the merger, and everything else (the LLM)."""
    visual = model.model.visual
    merger = {id(p) for p in visual.merger.parameters()}
    vision = {id(p) for p in visual.parameters()} - merger
    return {"merger": merger, "vision": vision, "llm": {id(p) for p in model.parameters()} - merger - vision}


@EACH_FAMILY
def test_param_groups_carry_per_module_learning_rates_and_no_decay(tiny_model_of, family):
    model = load_model(tiny_model_of(family))
    optim.apply_freezing(model, freeze_llm=False, freeze_vision_tower=False, tune_merger=True)
    groups = {g["name"]: g for g in optim.param_groups(model, 1e-5, 2e-6, 3e-5, 0.1)}
    assert set(groups) == {"llm", "llm_no_decay", "vision", "vision_no_decay", "merger", "merger_no_decay"}
    assert groups["vision"]["lr"] == 2e-6 and groups["merger"]["lr"] == 3e-5 and groups["llm"]["lr"] == 1e-5
    assert all(g["weight_decay"] == 0.0 for n, g in groups.items() if n.endswith("no_decay"))
    assert all(p.ndim >= 2 for p in groups["llm"]["params"])
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert len(grouped) == len(set(grouped)) == len(list(model.parameters()))  # every parameter in exactly one group
    for module, params in _module_parameters(model).items():
        assert {id(p) for name in (module, f"{module}_no_decay") for p in groups[name]["params"]} == params, module


@EACH_FAMILY
@pytest.mark.parametrize("frozen", [{"llm", "vision"}, {"llm"}, {"vision"}, {"merger"}],
                         ids=lambda frozen: "+".join(sorted(frozen)))
def test_freeze_flags(tiny_model_of, family, frozen):
    model = load_model(tiny_model_of(family))
    counts = optim.apply_freezing(model, freeze_llm="llm" in frozen, freeze_vision_tower="vision" in frozen,
                                  tune_merger="merger" not in frozen)
    for module, params in _module_parameters(model).items():
        assert {p.requires_grad for p in model.parameters() if id(p) in params} == {module not in frozen}, module
        assert (counts[module] == 0) == (module in frozen), module
    groups = optim.param_groups(model, 1e-5, 2e-6, 1e-5, 0.1)
    assert {g["name"].removesuffix("_no_decay") for g in groups} == {"llm", "vision", "merger"} - frozen


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


def test_length_grouped_batches_waste_less_padding_and_replay_per_epoch():
    import random

    from tinyrs.sft.trainer import length_grouped_sampler

    lengths = [random.Random(n).choice([40, 80, 400, 1200]) + n % 7 for n in range(512)]
    batch = 8

    def padding_waste(order):
        batches = [order[i:i + batch] for i in range(0, len(order), batch)]
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    sampler = length_grouped_sampler(lengths, batch, seed=3)
    sampler.set_epoch(0)
    first = list(sampler)
    assert sorted(first) == list(range(len(lengths)))
    assert list(sampler) == first  # the same epoch replays the same order: a resumed run sees the same batches
    sampler.set_epoch(1)
    assert list(sampler) != first
    shuffled = list(range(len(lengths)))
    random.Random(0).shuffle(shuffled)
    assert padding_waste(first) < 0.2 * padding_waste(shuffled)


def test_trainer_groups_by_the_manifests_lengths(repo_root, tmp_path, tiny_model_dir, tiny_sft_manifest):
    import dataclasses

    from tinyrs.config import load_config, typed_stage_settings
    from tinyrs.data.manifest import open_manifest
    from tinyrs.sft.trainer import ManifestDataset, make_trainer_class, training_arguments

    config = load_config([repo_root / "config.yaml", repo_root / "profiles/demo/overrides.yaml"])
    settings = dataclasses.replace(typed_stage_settings(config, "sft"), group_by_length=True, report_to=[])
    processor = load_processor(tiny_model_dir, settings.min_pixels, settings.max_pixels)
    dataset = ManifestDataset(open_manifest(tiny_sft_manifest), SampleEncoder(processor, None, 4096))
    trainer = make_trainer_class()(model=load_model(tiny_model_dir), args=training_arguments(settings, tmp_path),
                                   train_dataset=dataset, data_collator=lambda s: collate(s, 0))
    sampler = trainer._get_train_sampler()
    assert type(sampler).__name__ == "EpochSeededLengthGroupedSampler"
    visual = settings.max_pixels // (28 * 28)
    assert sampler.lengths == dataset.lengths() and min(sampler.lengths) > visual


def test_liger_kernels_need_cuda(repo_root, capsys):
    import dataclasses

    from tinyrs.config import load_config, typed_stage_settings
    from tinyrs.sft.trainer import use_liger

    settings = typed_stage_settings(load_config([repo_root / "config.yaml"]), "sft")
    assert use_liger(dataclasses.replace(settings, liger_kernel=False)) is False
    if not torch.cuda.is_available():
        assert use_liger(dataclasses.replace(settings, liger_kernel=True)) is False
        assert "liger_kernel needs CUDA" in capsys.readouterr().out
