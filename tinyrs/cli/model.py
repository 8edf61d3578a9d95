"""``tinyrs model``: the base model of the pipeline (Hub download, or the offline tiny demo model)."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="build or fetch the base model")
    commands = parser.add_subparsers(dest="model_command", required=True)

    tiny = commands.add_parser("tiny", help="build the tiny random-init Qwen2-VL of the demo world")
    tiny.add_argument("--out", required=True, help="model directory to write")
    tiny.add_argument("--corpus", nargs="+", required=True, help="VHM-style JSON lists to train the tokenizer on")
    tiny.add_argument("--min-pixels", type=int, default=3136)
    tiny.add_argument("--max-pixels", type=int, default=224 * 224)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_tiny)

    fetch = commands.add_parser("fetch", help="download a model from the Hugging Face Hub (or a local mirror)")
    fetch.add_argument("--repo", required=True)
    fetch.add_argument("--revision", default="main")
    fetch.add_argument("--mirror", default=None, help="local directory laid out like the Hub")
    fetch.add_argument("--out", required=True)
    fetch.set_defaults(func=_fetch)


def _tiny(args: argparse.Namespace) -> int:
    from tinyrs.io import write_manifest
    from tinyrs.model.tiny import build_tiny_model, corpus_from_lists
    from tinyrs.provenance import provenance

    summary = build_tiny_model(args.out, corpus_from_lists(args.corpus), args.min_pixels, args.max_pixels, args.seed)
    write_manifest(args.out, stage="base", source="tiny", seed=args.seed, corpus=args.corpus, **summary,
                   **provenance())
    print(f"tinyrs: tiny Qwen2-VL with {summary['parameters']:,} parameters written to {args.out}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tinyrs.io import write_manifest
    from tinyrs.model.fetch import fetch_model
    from tinyrs.provenance import provenance

    summary = fetch_model(args.repo, args.revision, args.out, args.mirror)
    write_manifest(args.out, stage="base", source="hub", **summary, **provenance())
    return 0
