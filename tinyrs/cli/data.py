"""``tinyrs data fetch|correct|oversample|validate``: the data stages (see tinyrs/data/)."""
from __future__ import annotations

import argparse
import os
import sys

from tinyrs.cli.options import add_settings_option, from_settings, require
from tinyrs.data.records import MAX_REJECTED_FRACTION
from tinyrs.settings import DataListSettings, FetchSettings


def _fetch(args: argparse.Namespace) -> int:
    from tinyrs.data.fetch import FetchError, fetch_dataset

    from_settings(args)
    require(args, "dataset", "repo", "allow_pattern")
    try:
        record = fetch_dataset(
            args.dataset, args.repo, args.revision, args.allow_pattern, args.out, args.mirror, args.unpack_shards
        )
    except FetchError as err:
        print(f"tinyrs: {err}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {record['files']} files, {record['bytes']} bytes in {args.out}")
    if record["skipped"]:
        entries = "entry" if record["skipped"] == 1 else "entries"
        print(f"tinyrs: {record['skipped']} {entries} of the mirror skipped, links and special files are never "
              f"followed or copied: {', '.join(record['skipped_examples'])} (see {args.out}/.complete)",
              file=sys.stderr)
    return 0


def _correct(args: argparse.Namespace) -> int:
    from tinyrs.data.correct import correct_list

    if from_settings(args):  # the settings name the list by its file in the fetched dataset
        args.list = os.path.join(args.image_root, args.list)
    require(args, "list")
    report = correct_list(args.list, args.image_root, args.check, args.out_dir, workers=args.workers,
                          max_rejected_fraction=args.max_rejected_fraction, allow_empty=args.allow_empty)
    rejected = {reason: count for reason, count in report["rejected"].items() if count}
    print(f"{args.list}: read {report['read']}, kept {report['kept']}, rejected {rejected or 0}")
    return 0


def _oversample(args: argparse.Namespace) -> int:
    from tinyrs.data.oversample import SHUFFLED_ONCE, check_factors, load_factors, oversample

    settings = from_settings(args)
    if settings:  # the list's settings: its oversample section, which also holds the seed
        section = settings.oversample.to_dict() if settings.oversample else SHUFFLED_ONCE
        factors = check_factors(section, args.settings)
        args.seed = section["seed"]
    else:
        factors = load_factors(args.factors)
    require(args, "seed")
    report = oversample(args.in_dir, factors, args.seed, args.out_dir, allow_empty=args.allow_empty)
    print(f"{args.in_dir}: {report['records_before']} -> {report['records_after']} records in {args.out_dir}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from tinyrs.data.validate import run_validate

    tags = None
    if args.reasoning_tags:
        tags = tuple(tag.strip() for tag in args.reasoning_tags.split(","))
        if len(tags) != 2 or not all(tags):
            print("tinyrs data validate: --reasoning-tags needs two names, e.g. reasoning,answer", file=sys.stderr)
            return 2
    return run_validate(args.list, args.image_root, tags, args.max_errors)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text}")
    return value


def _allow_empty_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-empty", action="store_true",
                        help="an empty output is not an error (config: data.allow_empty)")


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="fetch, correct, oversample and validate data lists")
    commands = data.add_subparsers(dest="data_command", required=True)

    fetch = commands.add_parser("fetch", help="download a Hub dataset repo (or link it from a mirror)")
    add_settings_option(fetch, "the dataset's fetch settings (settings/fetch-<dataset>.json)", FetchSettings,
                        {"dataset": "dataset", "repo": "repo", "revision": "revision", "allow_pattern": "allow_patterns",
                         "unpack_shards": "unpack_shards", "mirror": "mirror"})
    fetch.add_argument("--dataset", help="dataset key (recorded in .complete)")
    fetch.add_argument("--repo", help="Hub dataset repo, e.g. aybora/VHM_VersaD")
    fetch.add_argument("--revision", default="main")
    fetch.add_argument("--allow-pattern", action="append", help="fnmatch pattern (repeatable)")
    fetch.add_argument("--unpack-shards", action="store_true", help="unpack <sub>/*.tar webdataset shards")
    fetch.add_argument("--mirror", help="local folder laid out as <mirror>/<repo name>/ instead of the Hub")
    fetch.add_argument("--out", required=True, help="target folder; .complete is written there last")
    fetch.set_defaults(func=_fetch)

    correct = commands.add_parser("correct", help="stream a raw list: fix image paths and tags, reject bad records")
    add_settings_option(correct, "the list's data settings (settings/data-<list>.json; its file is read from "
                                 "--image-root)", DataListSettings, {"list": "file", "check": "check_images",
                                                   "max_rejected_fraction": "max_rejected_fraction",
                                                   "allow_empty": "allow_empty"})
    correct.add_argument("--list", help="raw VHM JSON array")
    correct.add_argument("--image-root", required=True, help="folder holding the image sub-folders")
    correct.add_argument("--check", choices=("none", "exists", "decode"), default="exists")
    correct.add_argument("--out-dir", required=True)
    correct.add_argument(
        "--workers", type=int, help="worker processes for lists above 16 MB (default: the CPU count, at most 8)"
    )
    correct.add_argument(
        "--max-rejected-fraction", type=_fraction, default=MAX_REJECTED_FRACTION,
        help="fail when more of the records are rejected for a defect, duplicates aside "
             "(config: data.max_rejected_fraction; default %(default)s)",
    )
    _allow_empty_option(correct)
    correct.set_defaults(func=_correct)

    oversample = commands.add_parser("oversample", help="repeat/subsample per source, shuffle, write the manifest")
    oversample.add_argument("--in-dir", required=True, help="output folder of `tinyrs data correct`")
    add_settings_option(oversample, "the list's data settings (settings/data-<list>.json): its oversample section "
                                    "holds the factors and --seed (null: every record once, shuffled with seed 0)",
                        DataListSettings, {"allow_empty": "allow_empty"})
    oversample.add_argument(
        "--factors", help='JSON or a JSON file: null or {"default": f, "factors": {source: f}}; absent: copy'
    )
    oversample.add_argument("--seed", type=int)
    oversample.add_argument("--out-dir", required=True)
    _allow_empty_option(oversample)
    oversample.set_defaults(func=_oversample)

    validate = commands.add_parser("validate", help="report schema problems of a list (exit 1 if any)")
    validate.add_argument("--list", required=True)
    validate.add_argument("--image-root", help="also check that every image exists under this folder")
    validate.add_argument("--reasoning-tags", help="e.g. reasoning,answer: every gpt answer must be in that format")
    validate.add_argument("--max-errors", type=int, default=50, help="problems printed (all are counted)")
    validate.set_defaults(func=_validate)
