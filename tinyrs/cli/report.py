"""``tinyrs report``: every task x every stage as Markdown, CSV, Parquet and one plot per task family."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="tables and plots of the eval metrics across stages")
    parser.add_argument("--eval-dir", required=True, help="holds <stage>/<task>.metrics.json")
    parser.add_argument("--stages", help="comma-separated stages, in column order (default: config eval.stages)")
    parser.add_argument("--out-dir", required=True, help="where results.{md,csv,parquet} and <family>.png go")
    parser.add_argument("--config", action="append",
                        help="config YAML (repeat for overlays): its eval tasks appear even with no metrics file")
    parser.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    from tinyrs.config import ConfigError, load_config
    from tinyrs.report import write_report

    config = load_config(args.config) if args.config else None
    if args.stages:
        stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    elif config:
        stages = config["eval"]["stages"]
    else:
        raise ConfigError("tinyrs report: give --stages or --config")
    expected = config["eval"]["tasks"] if config else None
    print(write_report(args.eval_dir, stages, args.out_dir, expected), end="")
    return 0
