"""``tinyrs train``: one stage of the SFT family (pretrain, SFT, CoT-SFT), chosen by its settings file."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="run one SFT-family stage (pretrain, sft, cot)")
    parser.add_argument("--settings", required=True, help="the stage's settings JSON (written by the Snakefile)")
    parser.add_argument("--init", required=True, help="model directory (or its tinyrs_manifest.json) to start from")
    parser.add_argument("--data", required=True, help="Parquet manifest of the training list")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (kept across failed runs)")
    parser.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    from tinyrs import preflight
    from tinyrs.config import read_settings
    from tinyrs.io import model_dir_of

    settings = read_settings(args.settings)
    preflight.require_ready("train", settings, preflight.input_paths("train", args))
    from tinyrs.sft.trainer import train  # after the checks: imports torch and transformers

    summary = train(settings, str(model_dir_of(args.init)), args.data, args.out, args.checkpoints)
    if summary:
        print(f"tinyrs: {summary['stage']} done: {summary['steps']} steps, final loss {summary['final_loss']}")
    return 0
