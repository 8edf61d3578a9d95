"""``tinyrs eval run|score|merge``: benchmark a model, re-score saved predictions, combine shards."""
from __future__ import annotations

import argparse
import json

from tinyrs.cli.options import add_settings_option, from_settings, require
from tinyrs.settings import EvalSettings


def register(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="evaluate a model on the benchmark tasks")
    commands = parser.add_subparsers(dest="eval_command", required=True)

    run = commands.add_parser("run", help="generate and score predictions (resumes a killed run)")
    run.add_argument("--settings", required=True, help="the stage's eval settings JSON (work/settings/eval-<stage>.json)")
    run.add_argument("--model", required=True, help="model directory (or its tinyrs_manifest.json)")
    run.add_argument("--data-root", required=True, help="the fetched eval dataset directory")
    run.add_argument("--out-dir", required=True, help="where <task>.jsonl and <task>.metrics.json go")
    run.add_argument("--tasks", help="comma-separated task keys (default: all configured tasks)")
    run.add_argument("--shard", default="0/1", help="i/n: evaluate samples with index %% n == i (default 0/1)")
    run.set_defaults(func=run_command)

    score = commands.add_parser("score", help="re-score a predictions JSONL without a model")
    score.add_argument("--task", required=True)
    score.add_argument("--predictions", required=True, help="a <task>.jsonl written by 'tinyrs eval run'")
    source = score.add_mutually_exclusive_group(required=True)
    source.add_argument("--settings", help="eval settings JSON (tasks and chat tags)")
    source.add_argument("--config", action="append", help="config YAML (repeat for overlays, later wins)")
    score.add_argument("--output", help="write the metrics JSON here (default: print it)")
    score.add_argument("--skip-bad-lines", action="store_true", help="count and report bad lines instead of failing")
    score.set_defaults(func=score_command)

    merge = commands.add_parser("merge", help="combine finished shards into <task>.jsonl and <task>.metrics.json")
    merge.add_argument("--task", required=True)
    merge.add_argument("--out-dir", required=True)
    add_settings_option(merge, "the column's eval settings (settings/eval-<column>.json)", EvalSettings,
                        {"shards": "shards"})
    merge.add_argument("--shards", type=int)
    merge.set_defaults(func=merge_command)


def _task_keys(text: str | None) -> list[str] | None:
    return [key.strip() for key in text.split(",") if key.strip()] if text else None


def run_command(args: argparse.Namespace) -> int:
    from tinyrs import preflight
    from tinyrs.config import ConfigError, read_eval_settings
    from tinyrs.eval.runner import Shard, run_eval

    settings = read_eval_settings(args.settings)
    preflight.require_ready("eval", settings, preflight.input_paths("eval", args))

    try:
        shard = Shard.parse(args.shard)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    run_eval(settings, args.model, args.data_root, args.out_dir, _task_keys(args.tasks), shard)
    return 0


def score_command(args: argparse.Namespace) -> int:
    from tinyrs.config import eval_tasks, load_config, read_eval_settings
    from tinyrs.eval.runner import score_predictions
    from tinyrs.eval.tasks import select_tasks, task_registry
    from tinyrs.io import write_json
    from tinyrs.settings import ChatSettings

    if args.settings:
        settings = read_eval_settings(args.settings)
        tasks, chat = settings.tasks, settings.chat
        meta = {"stage": settings.stage, "prompt_style": settings.prompt_style, "backend": settings.backend}
    else:
        config = load_config(args.config)
        tasks, chat, meta = eval_tasks(config), ChatSettings.from_dict(config["chat"], "chat"), {}
    (task,) = select_tasks(task_registry(tasks), [args.task])
    rows, skipped_bad_lines = _prediction_rows(args.predictions, args.skip_bad_lines)
    meta.update(predictions=args.predictions, skipped_bad_lines=skipped_bad_lines)
    document = score_predictions(task, rows, chat, meta)
    if args.output:
        write_json(args.output, document)
    else:
        print(json.dumps(document, indent=2))
    return 0


def _prediction_rows(path: str, skip_bad_lines: bool) -> tuple[list[dict], int]:
    """The rows of a predictions file and how many bad lines were skipped; no rows at all is an error."""
    from tinyrs.io import DataError, scan_jsonl

    contents = scan_jsonl(path, skip_bad_lines=skip_bad_lines)
    if not contents.records:
        why = f"all {contents.skipped_bad_lines} lines were bad" if contents.skipped_bad_lines else "the file is empty"
        raise DataError(f"{path}: no predictions to score ({why})")
    return contents.records, contents.skipped_bad_lines


def merge_command(args: argparse.Namespace) -> int:
    from tinyrs.eval.runner import merge_shards

    from_settings(args)
    require(args, "shards")
    document = merge_shards(args.task, args.out_dir, args.shards)
    print(f"tinyrs eval merge {args.task}: {document['n']} samples from {args.shards} shards")
    return 0
