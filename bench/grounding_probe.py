"""Can the tiny demo model learn grounding at all? A probe for issue #14, outside the pipeline.

Trains a fresh tiny Qwen2-VL (``tinyrs.model.tiny``, with architecture overrides) on grounding questions only: the
demo world's (``--world demo``) or a control world of one red box on a smooth background (``--world box``, box
sides drawn from ``--box-sides`` pixels of a 224-pixel scene), with a plain AdamW loop on the SFT stage's own
encoder and collator, then scores greedy answers on held-out grounding questions: P@0.5 and mean IoU, next to a
position-blind baseline (the mean training box for every question). A model that learns where objects are beats
the baseline; one that learns only the answer format does not.

    .venv/bin/python bench/grounding_probe.py --steps 800 --train 1000 --arch '{"rope_theta": 3}'
    .venv/bin/python bench/grounding_probe.py --world box --box-sides 40 110 --steps 600 --arch '{"rope_theta": 3}'
    .venv/bin/python bench/grounding_probe.py --warm-steps 300 --steps 80 --batch-size 8 --threads 1

``--warm-steps`` first trains on the red-box control (a stand-in base model that already grounds generic objects,
as Qwen2-VL-2B-Instruct does) and scores it there and on ``--world``'s questions before ``--steps`` on them.

Results and their commands: bench/README.md ("Grounding probe").
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinyrs import chat  # noqa: E402
from tinyrs.answers import BOX_SCALE, format_box, iou, parse_boxes  # noqa: E402
from tinyrs.data.demo_world import content  # noqa: E402
from tinyrs.data.demo_world.scenes import IMAGE_SIZE, encode_jpeg, smooth_noise  # noqa: E402
from tinyrs.model.tiny import TINY_ARCH, build_tiny_model  # noqa: E402
from tinyrs.sft.batching import SampleEncoder, collate  # noqa: E402


def with_position_cue(image: np.ndarray, strength: float) -> np.ndarray:
    """A colour ramp across the image (red along x, blue along y): absolute position readable from a patch."""
    if not strength:
        return image
    height, width = image.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    out = image.astype(np.float32)
    out[..., 0] += strength * (xs / width - 0.5)
    out[..., 2] += strength * (ys / height - 0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def sft_record(image: Path, question: str, answer: str) -> dict:
    """One grounding question as an SFT record (VHM-style turns), its answer kept apart for scoring."""
    return {"images": [str(image)], "answer": answer, "conversations": [
        {"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]}


def grounding_records(n: int, seed: int, folder: Path, cue: float,
                      target_scales: tuple[float, ...] = content.VG_TARGET_SCALES) -> list[dict]:
    """``n`` demo-world grounding questions (``content.ask_vg``) as SFT records; images written to ``folder``."""
    ask = content.Asker(random.Random(seed), balanced=True)
    records = []
    for index in range(n):
        ask.index = index
        scene, (qa,) = content.ask_vg(ask, target_scales)
        path = folder / f"{seed}_{index}.jpg"
        path.write_bytes(encode_jpeg(with_position_cue(scene.image, cue)))
        records.append(sft_record(path, f"{qa.prefix} {qa.question}", qa.answer))
    return records


def box_records(n: int, seed: int, folder: Path, sides: tuple[int, int]) -> list[dict]:
    """``n`` control questions: one red box (sides uniform in ``sides`` px) on a smooth random background."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(n):
        image = rng.uniform(60, 140, 3) + 40 * (smooth_noise(rng, 6)[..., None] - 0.5)
        width, height = (int(side) for side in rng.integers(sides[0], sides[1] + 1, 2))
        x, y = int(rng.integers(0, IMAGE_SIZE - width + 1)), int(rng.integers(0, IMAGE_SIZE - height + 1))
        image[y:y + height, x:x + width] = (230, 40, 40)
        path = folder / f"box{seed}_{index}.jpg"
        path.write_bytes(encode_jpeg(np.clip(image, 0, 255).astype(np.uint8)))
        answer = format_box(tuple(round(v / IMAGE_SIZE * BOX_SCALE) for v in (x, y, x + width, y + height)))
        records.append(sft_record(path, "{VG} Where is the red box?", answer))
    return records


def train(model, processor, records: list[dict], steps: int, lr: float, batch_size: int) -> list[float]:
    import torch

    samples = [SampleEncoder(processor, None, 1024)(record) for record in records]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warmup = max(1, steps // 25)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.05, 1 - step / steps))
    rng, losses = random.Random(0), []
    model.train()
    for _ in range(steps):
        batch = collate(rng.sample(samples, batch_size), processor.tokenizer.pad_token_id)
        loss = model(**{key: value for key, value in batch.items() if not key.startswith("tinyrs")}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def answer_ious(model, processor, records: list[dict], batch_size: int = 25) -> np.ndarray:
    import torch
    from PIL import Image

    model.eval()
    processor.tokenizer.padding_side = "left"
    ious = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        texts = [chat.render(processor, chat.to_messages(r["conversations"][:1], None), add_generation_prompt=True)
                 for r in chunk]
        images = [Image.open(r["images"][0]).convert("RGB") for r in chunk]
        inputs = processor(text=texts, images=images, return_tensors="pt", padding=True)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=30, do_sample=False)
        for record, tokens in zip(chunk, output[:, inputs["input_ids"].shape[1]:]):
            predicted = parse_boxes(processor.tokenizer.decode(tokens, skip_special_tokens=True))
            ious.append(iou(predicted[0], parse_boxes(record["answer"])[0]) if predicted else 0.0)
    return np.asarray(ious)


def scores(ious: np.ndarray) -> dict:
    return {"precision@0.5": float((ious >= 0.5).mean()), "mean_iou": round(float(ious.mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", choices=("demo", "box"), default="demo",
                        help="the demo world's grounding questions, or the red-box control")
    parser.add_argument("--box-sides", type=int, nargs=2, default=(40, 110), help="--world box: side range, px of 224")
    parser.add_argument("--target-scales", type=float, nargs="+", default=content.VG_TARGET_SCALES,
                        help="--world demo: sizes of the referred object, multiples of its sprite's")
    parser.add_argument("--arch", default='{"rope_theta": 3}',
                        help="JSON overrides of tinyrs.model.tiny.TINY_ARCH (default: the TinyRS demo's)")
    parser.add_argument("--train", type=int, default=1000, help="training questions")
    parser.add_argument("--test", type=int, default=100, help="held-out questions")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pixels", type=int, default=112, help="image side the model sees (the demo's 112)")
    parser.add_argument("--position-cue", type=float, default=0.0, help="colour ramp strength (0: none)")
    parser.add_argument("--warm-steps", type=int, default=0,
                        help="red-box control steps (batch 16, lr 1e-3) before --steps on --world (0: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (a pipeline job has 1)")
    args = parser.parse_args()

    import torch
    from transformers import AutoProcessor, Qwen2VLForConditionalGeneration

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        def questions(n: int, seed: int) -> list[dict]:
            if args.world == "box":
                return box_records(n, seed, folder, args.box_sides)
            return grounding_records(n, seed, folder, args.position_cue, tuple(args.target_scales))

        train_records, test_records = questions(args.train, 1), questions(args.test, 2)
        warm_records = box_records(1000, 3, folder, args.box_sides) if args.warm_steps else []
        corpus = [turn["value"] for record in train_records + warm_records for turn in record["conversations"]]
        build_tiny_model(folder / "model", corpus, 3136, args.pixels ** 2, arch=TINY_ARCH | json.loads(args.arch))
        processor = AutoProcessor.from_pretrained(folder / "model")
        model = Qwen2VLForConditionalGeneration.from_pretrained(folder / "model", dtype=torch.float32)
        warm = {}
        if args.warm_steps:
            warm_started = time.time()
            warm_losses = train(model, processor, warm_records, args.warm_steps, 1e-3, 16)
            warm_seconds = round(time.time() - warm_started)
            control, before = answer_ious(model, processor, box_records(100, 4, folder, args.box_sides)), \
                answer_ious(model, processor, test_records)
            warm = {"warm_steps": args.warm_steps, "warm_loss": round(float(np.mean(warm_losses[-50:])), 3),
                    "warm_seconds": warm_seconds,
                    "warm_control": scores(control), "warm_on_world": scores(before)}
        losses = train(model, processor, train_records, args.steps, args.lr, args.batch_size)
        ious = answer_ious(model, processor, test_records)
        truth = np.asarray([parse_boxes(r["answer"])[0] for r in train_records], dtype=float)
        mean_box = tuple(truth.mean(axis=0))
        blind = np.asarray([iou(mean_box, parse_boxes(r["answer"])[0]) for r in test_records])
    print(json.dumps({
        "world": args.world,
        **({"box_sides": args.box_sides} if args.world == "box" else {"target_scales": args.target_scales}),
        "arch": json.loads(args.arch), "position_cue": args.position_cue, **warm, "steps": args.steps,
        "train": args.train, "batch_size": args.batch_size,
        "final_loss": round(float(np.mean(losses[-50:])), 3), **scores(ious),
        **{f"blind_{key}": value for key, value in scores(blind).items()}, "n_test": len(test_records),
        "seconds": round(time.time() - started),
    }))


if __name__ == "__main__":
    main()
