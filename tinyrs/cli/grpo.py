"""``tinyrs grpo``: GRPO alignment with task-aware rewards."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("grpo", help="run the GRPO stage")
    parser.add_argument("--settings", required=True, help="GRPO settings JSON (written by the Snakefile)")
    parser.add_argument("--init", required=True, help="model directory (or its tinyrs_manifest.json) to start from")
    parser.add_argument("--dataset", required=True, help="the GRPO DatasetDict directory (save_to_disk layout)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (kept across failed runs)")
    parser.set_defaults(func=_grpo)


def _grpo(args: argparse.Namespace) -> int:
    from tinyrs import preflight
    from tinyrs.config import read_settings
    from tinyrs.io import model_dir_of

    settings = read_settings(args.settings)
    preflight.require_ready("grpo", settings, preflight.input_paths("grpo", args))
    from tinyrs.grpo.trainer import train  # after the checks: imports torch and transformers

    summary = train(settings, str(model_dir_of(args.init)), args.dataset, args.out, args.checkpoints)
    if summary:
        print(f"tinyrs: grpo done: {summary['steps']} steps, reward curve {summary['reward_curve']}")
    return 0
