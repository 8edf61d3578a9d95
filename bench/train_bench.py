"""SFT trainer throughput: tokens/s and MFU, padded vs padding-free, without / with DeepSpeed ZeRO-2 / ZeRO-3.

Every variant runs the real entry point (``torchrun -m tinyrs.cli train``, one process per device) on the
same synthetic remote-sensing-like SFT manifest (made by the real data stages), with the settings of
config.yaml's ``train_defaults`` except the overrides below. tokens/s is the trainer's own logged
``tokens_per_second`` (real tokens, no padding), the median over the logged steps after ``--warmup``.

MFU = tokens/s x training FLOPs per token / the device's peak. FLOPs per token are counted over the
dataset: 6 x parameters of every matmul a token passes through (LLM layers and the LM head; vision
blocks and merger for patches), plus attention scores, 6 x layers x width x length^2 per sequence
(causal: half of 12) in the LLM and 12 x layers x width x patches^2 per image in the bidirectional
vision tower.

    .venv/bin/python bench/train_bench.py --arch tiny --steps 30                     # CPU: ratios only
    python bench/train_bench.py --arch 2b --precision bf16 --attn flash_attention_2 \\
        --deepspeed none,zero2,zero3 --per-device-batch 8 --steps 40                  # one H100
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tinyrs.config import load_config, stage_settings  # noqa: E402
from tinyrs.model.tiny import QWEN2_VL_2B_ARCH, TINY_ARCH, build_tiny_model  # noqa: E402
from tinyrs.settings import ChatSettings  # noqa: E402

ARCHES = {"tiny": TINY_ARCH, "2b": QWEN2_VL_2B_ARCH}
PEAK_BF16_FLOPS = {"H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.0e12, "H200": 989.4e12}  # dense, no sparsity
WORDS = ("harbor", "runway", "river", "forest", "field", "building", "road", "ship", "airplane", "tank",
         "bridge", "residential", "industrial", "parking", "lot", "beach", "desert", "meadow", "storage")


def make_dataset(root: Path, records: int, sizes: list[int], seed: int) -> Path:
    """SFT records with images of mixed sizes and answers of mixed lengths, like the real mix of
    one-word classification, VQA and long captions; returns the Parquet manifest."""
    from PIL import Image

    from tinyrs.data.correct import correct_list
    from tinyrs.data.oversample import oversample

    rng = random.Random(seed)
    (root / "BENCH").mkdir(parents=True, exist_ok=True)
    listed = []
    for number in range(records):
        width, height = rng.choice(sizes), rng.choice(sizes)
        Image.effect_noise((width, height), 60).convert("RGB").save(root / "BENCH" / f"{number}.png")
        answer = " ".join(rng.choice(WORDS) for _ in range(int(rng.choice([1, 1, 4, 16, 64, 160]))))
        listed.append({"id": number, "source_dataset": "BENCH", "image": f"{number}.png", "conversations": [
            {"from": "human", "value": "<image>\nDescribe this remote sensing image."},
            {"from": "gpt", "value": answer}]})
    (root / "list.json").write_text(json.dumps(listed))
    correct_list(root / "list.json", root, "exists", root / "out" / "corrected", workers=1)
    oversample(root / "out" / "corrected", None, seed, root / "out")
    return root / "out" / "manifest.parquet"


def flops_per_token(model_dir: Path, manifest: Path, settings: dict) -> float:
    """Training FLOPs per real token, averaged over the dataset (see the module docstring)."""
    from transformers import AutoConfig

    from tinyrs import chat
    from tinyrs.data.manifest import open_manifest
    from tinyrs.model.load import load_processor
    from tinyrs.sft.batching import SampleEncoder

    config = AutoConfig.from_pretrained(model_dir)
    text, vision = config.text_config, config.vision_config
    d, layers, ffn = text.hidden_size, text.num_hidden_layers, text.intermediate_size
    kv = d // text.num_attention_heads * text.num_key_value_heads
    llm_matmul = layers * (2 * d * d + 2 * d * kv + 3 * d * ffn) + d * text.vocab_size
    dv, lv = vision.embed_dim, vision.depth
    patch_in = 3 * vision.temporal_patch_size * vision.patch_size ** 2
    merge = vision.spatial_merge_size ** 2
    vision_per_patch = patch_in * dv + lv * (4 * dv * dv + 2 * dv * dv * vision.mlp_ratio) + (
        (dv * merge) ** 2 + dv * merge * d) / merge
    processor = load_processor(model_dir, settings["min_pixels"], settings["max_pixels"])
    system = chat.system_prompt(ChatSettings.from_dict(settings["chat"], "chat"), settings["system_prompt"])
    encoder = SampleEncoder(processor, system, settings["max_length"])
    rows = open_manifest(manifest)
    total_flops = total_tokens = 0.0
    for index in range(len(rows)):
        sample = encoder(rows[index])
        if sample is None:
            continue
        tokens = sample["input_ids"].shape[0]
        total_tokens += tokens
        total_flops += 6 * llm_matmul * tokens + 6 * layers * d * tokens ** 2
        for t, h, w in sample.get("image_grid_thw", []).tolist():
            patches = t * h * w
            total_flops += 6 * vision_per_patch * patches + 12 * lv * dv * patches ** 2
    return total_flops / total_tokens


def run_variant(name: str, settings: dict, model_dir: Path, manifest: Path, work: Path, warmup: int) -> dict:
    variant_dir = work / name
    variant_dir.mkdir(parents=True, exist_ok=True)
    settings_path = variant_dir / "settings.json"
    settings_path.write_text(json.dumps(settings))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",  # torchrun
               "-m", "tinyrs.cli", "train", "--settings", str(settings_path), "--init", str(model_dir), "--data", str(manifest),
               "--out", str(variant_dir / "model"), "--checkpoints", str(variant_dir / "ckpt")]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    subprocess.run(command, check=True, env=env, cwd=REPO)
    log = json.loads((variant_dir / "model" / "train_log.json").read_text())
    rates = [entry["tokens_per_second"] for entry in log if "tokens_per_second" in entry][warmup:]
    return {"variant": name, "tokens_per_second": statistics.median(rates), "logged_steps": len(rates),
            "final_loss": [e["loss"] for e in log if "loss" in e][-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), default="tiny")
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--sizes", default="112,224,336", help="image sides in pixels to draw from")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="logged steps left out of the median")
    parser.add_argument("--per-device-batch", type=int, default=8)
    parser.add_argument("--modes", default="padded,padding_free")
    parser.add_argument("--deepspeed", default="none", help="comma list of none, zero2, zero3")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--attn", default="sdpa")
    parser.add_argument("--max-pixels", type=int, default=336 * 336)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak (default: from its name)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/tinyrs-train-bench"))
    args = parser.parse_args()

    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    manifest = args.work / "data" / "out" / "manifest.parquet"
    if not manifest.exists():
        manifest = make_dataset(args.work / "data", args.records, [int(s) for s in args.sizes.split(",")], seed=0)
    model_dir = args.work / f"model-{args.arch}"
    if not (model_dir / "config.json").exists():
        corpus = [" ".join(WORDS), "Describe this remote sensing image."] * 50
        build_tiny_model(model_dir, corpus, min_pixels=3136, max_pixels=args.max_pixels, arch=ARCHES[args.arch])

    base = stage_settings(load_config([REPO / "config.yaml"]), "sft")
    base.update(max_steps=args.steps, logging_steps=1, save_steps=10 ** 6, report_to=[], epochs=1000,
                per_device_batch_size=args.per_device_batch, global_batch_size=args.per_device_batch,
                precision=args.precision, attn_implementation=args.attn, min_pixels=3136,
                max_pixels=args.max_pixels, gradient_checkpointing=args.gradient_checkpointing,
                dataloader_workers=2, group_by_length=False)
    per_token = flops_per_token(model_dir, manifest, base)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next(
        (flops for key, flops in PEAK_BF16_FLOPS.items() if key in device), None)

    results = []
    for deepspeed in args.deepspeed.split(","):
        for mode in args.modes.split(","):
            settings = dict(base, padding_free=mode == "padding_free",
                            deepspeed=None if deepspeed == "none" else deepspeed)
            result = run_variant(f"{mode}-{deepspeed}", settings, model_dir, manifest, args.work, args.warmup)
            result["mfu"] = result["tokens_per_second"] * per_token / peak if peak else None
            results.append(result)
    summary = {"device": device, "arch": args.arch, "flops_per_token": per_token, "peak_flops": peak,
               "args": {k: str(v) for k, v in vars(args).items()}, "results": results}
    (args.work / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"| variant | tokens/s | MFU | final loss |  ({device}, {args.arch}, {per_token / 1e9:.2f} GFLOP/token)")
    print("| --- | ---: | ---: | ---: |")
    for r in results:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"| {r['variant']} | {r['tokens_per_second']:.0f} | {mfu} | {r['final_loss']:.3f} |")


if __name__ == "__main__":
    main()
