"""``tinyrs model``: the base model of the pipeline and published checkpoints (Hub download or a mirror, or the
offline tiny demo model)."""
from __future__ import annotations

import argparse
import json

from tinyrs.model.families import DEFAULT_FAMILY, FAMILIES
from tinyrs.cli.options import add_settings_option, from_settings, require
from tinyrs.settings import ModelSettings, TinyModelSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser("model", help="build or fetch the base model")
    commands = parser.add_subparsers(dest="model_command", required=True)

    tiny = commands.add_parser("tiny", help="build the tiny random-init base model of the demo world")
    add_settings_option(tiny, "the base model's settings (settings/model-base.json)", TinyModelSettings,
                        {"family": "family", "min_pixels": "min_pixels", "max_pixels": "max_pixels",
                         "arch": "arch"})
    tiny.add_argument("--family", choices=sorted(FAMILIES), default=DEFAULT_FAMILY, help="base_model.family")
    tiny.add_argument("--out", required=True, help="model directory to write")
    tiny.add_argument("--corpus", nargs="+", required=True, help="VHM-style JSON lists to train the tokenizer on")
    tiny.add_argument("--min-pixels", type=int, default=3136)
    tiny.add_argument("--max-pixels", type=int, default=224 * 224)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--arch", type=json.loads, default=None,
                      help="JSON object of base_model.tiny_arch: values that differ from the tiny model's")
    tiny.set_defaults(func=_tiny)

    fetch = commands.add_parser("fetch", help="download a model from the Hugging Face Hub (or a local mirror)")
    add_settings_option(fetch, "the model's settings (settings/model-<name>.json)", ModelSettings,
                        {"repo": "repo", "revision": "revision", "mirror": "mirror", "stage": "stage",
                         "family": "family"})
    fetch.add_argument("--repo")
    fetch.add_argument("--revision", default="main")
    fetch.add_argument("--mirror", default=None, help="local directory laid out like the Hub")
    fetch.add_argument("--stage", default="base",
                       help="the name the manifest records: base, or a published model's eval.external_models key")
    fetch.add_argument("--family", choices=sorted(FAMILIES), default=None,
                       help="base_model.family: the fetched model must be of it (the base model only)")
    fetch.add_argument("--out", required=True)
    fetch.set_defaults(func=_fetch)

    to_mirror = commands.add_parser(
        "to-mirror", help="lay out a model directory as a Hub repo of a local mirror (what fetch --mirror reads)")
    add_settings_option(to_mirror, "the settings of the model it stands for (settings/model-<name>.json)",
                        ModelSettings, {"repo": "repo", "mirror": "mirror"})
    to_mirror.add_argument("--model", required=True, help="model directory (or its tinyrs_manifest.json)")
    to_mirror.add_argument("--repo", help="the Hub id it stands for, owner/name")
    to_mirror.add_argument("--mirror", help="the mirror directory: the model goes to <mirror>/<name>")
    to_mirror.set_defaults(func=_to_mirror)


def _tiny(args: argparse.Namespace) -> int:
    from tinyrs.io import write_manifest
    from tinyrs.model.tiny import build_tiny_model, corpus_from_lists, tiny_arch
    from tinyrs.provenance import provenance

    from_settings(args)
    summary = build_tiny_model(args.out, corpus_from_lists(args.corpus), args.min_pixels, args.max_pixels, args.seed,
                               arch=tiny_arch(args.arch), family=args.family)
    write_manifest(args.out, stage="base", source="tiny", seed=args.seed, corpus=args.corpus, **summary,
                   **provenance())
    print(f"tinyrs: tiny {args.family} with {summary['parameters']:,} parameters written to {args.out}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from tinyrs.io import write_manifest
    from tinyrs.model.fetch import check_family, fetch_model
    from tinyrs.provenance import provenance

    from_settings(args)
    require(args, "repo")
    summary = fetch_model(args.repo, args.revision, args.out, args.mirror)
    if args.family:
        check_family(args.out, args.family, args.repo)
        summary["family"] = args.family
    write_manifest(args.out, stage=args.stage, source="hub", **summary, **provenance())
    return 0


def _to_mirror(args: argparse.Namespace) -> int:
    from tinyrs.model.fetch import put_in_mirror

    from_settings(args)
    require(args, "repo", "mirror")
    target = put_in_mirror(args.model, args.repo, args.mirror)
    print(f"tinyrs: {args.model} laid out as {args.repo} at {target}")
    return 0
