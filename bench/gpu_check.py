"""The GPU check: what can only be measured on CUDA, in one run that fits one call on a lent GPU machine.

1. bf16 master weights on CUDA: tests/test_mixed_precision.py (fp32 weights + bf16 autocast train like fp32;
   bf16 weights lose small updates).
2. A 2-step GRPO on CUDA in bf16 with Hugging Face generation, through ``tinyrs grpo`` on the demo world.
3. SFT tokens/s and MFU of the Qwen2-VL-2B architecture (random weights, bf16, SDPA), padded vs padding-free:
   bench/train_bench.py.

``--dry`` runs the same three steps on a CPU (fp32 where CUDA would be needed, the tiny architecture, a few
steps): it proves the script before device time is spent. Results: ``OUT/gpu_check.json`` and a table on stdout.
Run it through bench/gpu_check.sh, which brings the packages the GPU machine lacks.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def step(name: str, command: list[str], results: dict, timeout: int) -> bool:
    started = time.monotonic()
    print(f"== {name}: {' '.join(command)}", flush=True)
    try:
        code = subprocess.run(command, cwd=REPO, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    results[name] = {"exit": code, "seconds": round(time.monotonic() - started, 1)}
    print(f"== {name}: exit {code} after {results[name]['seconds']} s", flush=True)
    return code == 0


def grpo_two_steps(work: Path, precision: str) -> list[str]:
    """The demo world, the tiny model and a 2-step GRPO settings file; returns the ``tinyrs grpo`` command."""
    from demo_models import build_demo_world
    from tinyrs.config import load_config, settings_text, stage_settings
    from tinyrs.io import write_manifest
    from tinyrs.model.tiny import build_tiny_model, corpus_from_lists

    hub = build_demo_world(work / "hub")
    sft = hub / "VHM_dataset_sft"
    build_tiny_model(work / "base", corpus_from_lists([sft / "list_sft.json", sft / "list_sft_reasoning.json"]),
                     3136, 12544, 0)
    write_manifest(work / "base", stage="base", source="tiny")
    config = load_config([REPO / "config.yaml", REPO / "profiles" / "demo" / "overrides.yaml"])
    settings = {**stage_settings(config, "grpo"), "max_steps": 2, "report_to": [], "logging_steps": 1,
                "precision": precision, "skip_open_ended": True}  # no sentence-embedding model on the GPU machine
    (work / "grpo.json").write_text(settings_text(settings))
    return [sys.executable, "-m", "tinyrs.cli", "grpo", "--settings", str(work / "grpo.json"),
            "--init", str(work / "base" / "tinyrs_manifest.json"), "--dataset", str(hub / "VHM_dataset_grpo"),
            "--out", str(work / "grpo-model"), "--checkpoints", str(work / "grpo-checkpoints")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry", action="store_true", help="CPU rehearsal: fp32, tiny architecture, few steps")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/gpu-check")))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if not args.dry and device == "cpu":
        print("no CUDA device: run with --dry on a CPU", file=sys.stderr)
        return 2
    results: dict = {"device": device, "dry": args.dry, "torch": torch.__version__}
    py = sys.executable
    step("bf16 master weights", [py, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                                 "tests/test_mixed_precision.py"], results, 600)
    step("GRPO 2 steps", grpo_two_steps(args.out / "grpo", "fp32" if args.dry else "bf16"), results, 600)
    if (args.out / "grpo" / "grpo-model" / "tinyrs_manifest.json").exists():
        manifest = json.loads((args.out / "grpo" / "grpo-model" / "tinyrs_manifest.json").read_text())
        results["GRPO 2 steps"].update(steps=manifest.get("steps"), final_loss=manifest.get("final_loss"))
    bench = (["--arch", "tiny", "--precision", "fp32", "--steps", "6", "--warmup", "2", "--records", "32",
              "--sizes", "112,224"] if args.dry else
             ["--arch", "2b", "--precision", "bf16", "--steps", "20", "--warmup", "5", "--records", "192",
              "--sizes", "448,672", "--max-pixels", "1003520", "--gradient-checkpointing"])
    step("SFT throughput", [py, "bench/train_bench.py", *bench, "--attn", "sdpa", "--deepspeed", "none",
                            "--per-device-batch", "8", "--work", str(args.out / "train-bench")], results, 900)
    bench_results = args.out / "train-bench" / "results.json"
    if bench_results.exists():
        results["SFT throughput"]["variants"] = json.loads(bench_results.read_text())["results"]
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0 if all(value["exit"] == 0 for value in results.values() if isinstance(value, dict)) else 1


if __name__ == "__main__":
    sys.exit(main())
