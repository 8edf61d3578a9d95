"""Throughput of the eval transformers backend on the demo's tiny Qwen2-VL, across batch sizes.

    .venv/bin/python bench/eval_bench.py [--threads 2] [--samples 32] [--batch-sizes 1,4,16]

Builds the tiny random model in a temporary directory, renders synthetic classification prompts through the
eval prompt builder, and times ``TransformersBackend.generate`` (after a warm-up pass); prints a Markdown
table. The random model often stops early, so the mean completion length is shown beside the throughput.
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=112, help="side of the square synthetic images (pixels)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per batch size (best is reported)")
    args = parser.parse_args()

    import torch
    from PIL import Image

    from tinyrs.config import load_config, typed_eval_settings
    from tinyrs.eval.backends.transformers import TransformersBackend
    from tinyrs.eval.prompts import build_messages, question_text
    from tinyrs.eval.tasks import Task
    from tinyrs.model.tiny import build_tiny_model
    from tinyrs.settings import ChatSettings

    torch.set_num_threads(args.threads)
    chat = ChatSettings(system_prompt="You are a helpful assistant.", reasoning_system_prompt="Think first.",
                        reasoning_tag="reasoning", answer_tag="answer")
    settings = dataclasses.replace(typed_eval_settings(load_config([REPO / "config.yaml"]), "sft"), chat=chat,
                                   prompt_style="tinyrs", precision="fp32", attn_implementation="sdpa",
                                   max_new_tokens=args.max_new_tokens)
    task = Task("cls_bench", "cls_bench.json", "accuracy", "classification", "{CLS}")
    classes = ["forest", "harbour", "desert", "farmland", "residential", "airport"]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = [f"{{CLS}} What is the scene in this image? {name}" for name in classes] * 4
        side = args.image_size
        build_tiny_model(Path(tmp), corpus, min_pixels=side * side // 2, max_pixels=side * side)
        backend = TransformersBackend(tmp, settings)
        items = []
        for i in range(args.samples):
            image = Image.new("RGB", (side, side), (37 * i % 256, 91 * i % 256, 53 * i % 256))
            query = question_text(f"What is the scene in this image? ({i})", task, settings)
            items.append((build_messages(query, settings), [image]))
        rows = []
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
            for batch in batches:  # warm-up pass: first calls per input shape are slow
                backend.generate(batch)
            best, lengths = float("inf"), []
            for _ in range(args.repeats):
                start = time.perf_counter()
                completions = [text for batch in batches for text in backend.generate(batch)]
                best = min(best, time.perf_counter() - start)
                lengths = [len(backend.processor.tokenizer(text)["input_ids"]) for text in completions]
            rows.append((batch_size, len(items) / best, best, statistics.mean(lengths)))
    print(f"Eval backend throughput: tiny Qwen2-VL, {args.threads} threads, {args.samples} samples, "
          f"{args.image_size}px images, max_new_tokens {args.max_new_tokens}\n")
    print("| batch size | samples/s | seconds | mean completion tokens |")
    print("|---|---|---|---|")
    for batch_size, rate, seconds, length in rows:
        print(f"| {batch_size} | {rate:.1f} | {seconds:.2f} | {length:.1f} |")


if __name__ == "__main__":
    main()
