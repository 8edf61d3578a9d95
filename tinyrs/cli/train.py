"""``tinyrs train``: one stage of any kind (config ``stages``), its trainer chosen by the ``kind`` of its settings
file (``tinyrs.kinds.KINDS``). ``tinyrs grpo`` is the same command for a GRPO stage under its old options."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="run one stage (pretrain, sft, cot, grpo, ...: config stages)")
    parser.add_argument("--settings", required=True, help="the stage's settings JSON (written by the Snakefile)")
    parser.add_argument("--init", required=True, help="model directory (or its tinyrs_manifest.json) to start from")
    parser.add_argument("--data", required=True, help="what the stage trains on: a list's Parquet manifest (kind "
                                                      "sft), a fetched dataset's folder (kind grpo)")
    add_output_options(parser)
    parser.set_defaults(func=train)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--checkpoints", required=True, help="checkpoint directory (kept across failed runs)")


def train(args: argparse.Namespace) -> int:
    import importlib

    from tinyrs import preflight
    from tinyrs.config import read_stage_settings
    from tinyrs.io import model_dir_of
    from tinyrs.kinds import KINDS

    settings = read_stage_settings(args.settings)
    kind = KINDS[settings.kind]
    preflight.require_ready(kind.checks, settings,
                            preflight.stage_input_paths(kind.checks, args.init, args.data))
    trainer = importlib.import_module(kind.trainer)  # after the checks: imports torch and transformers
    summary = trainer.train(settings, str(model_dir_of(args.init)), args.data, args.out, args.checkpoints)
    if summary:
        print(f"tinyrs: {summary['stage']} done: {summary['steps']} steps, final loss {summary['final_loss']}")
    return 0
