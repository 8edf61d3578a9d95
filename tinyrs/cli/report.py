"""``tinyrs report``: every task x every stage (and published checkpoint) as Markdown, CSV, Parquet and one plot
per task family."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="tables and plots of the eval metrics across stages")
    parser.add_argument("--settings", help="the report's settings (settings/report.json), written by the workflow: "
                                           "its columns (stages) and published models (external)")
    parser.add_argument("--eval-dir", required=True, help="holds <stage>/<task>.metrics.json")
    parser.add_argument("--stages", help="comma-separated stages, in column order (default: config eval.stages)")
    parser.add_argument("--out-dir", required=True, help="where results.{md,csv,parquet} and <family>.png go")
    parser.add_argument("--config", action="append",
                        help="config YAML (repeat for overlays): its eval tasks appear even with no metrics file, "
                             "its published models (eval.external_models in eval.stages) are named")
    parser.add_argument("--external", action="append", default=[], metavar="NAME=REPO@REVISION",
                        help="a column that is a published checkpoint, and its source (repeatable)")
    parser.add_argument("--grpo-log", help="GRPO's train_log.json: adds its reward curves (grpo_rewards.png); "
                                           "the settings file gives it where the report has a grpo column")
    parser.add_argument("--reward-check", nargs=2, metavar=("BEFORE", "AFTER"),
                        help="GRPO's reward check: the rewards/<model>.json of the model before GRPO and after it "
                             "(tinyrs rewards sample); the settings file gives them where the workflow made them")
    parser.set_defaults(func=report_command)


def _external(values: list[str]) -> dict[str, str]:
    from tinyrs.config import ConfigError

    external = {}
    for value in values:
        name, _, source = value.partition("=")
        if not name or "@" not in source:
            raise ConfigError(f"tinyrs report: --external '{value}': expected NAME=REPO@REVISION")
        external[name] = source
    return external


def report_command(args: argparse.Namespace) -> int:
    from tinyrs.config import ConfigError, eval_tasks, external_models, load_config
    from tinyrs.report import write_report
    from tinyrs.settings import ReportSettings

    config = load_config(args.config) if args.config else None
    settings = ReportSettings.from_file(args.settings) if args.settings else None
    if settings:
        stages = settings.stages
    elif args.stages:
        stages = [stage.strip() for stage in args.stages.split(",") if stage.strip()]
    elif config:
        stages = config["eval"]["stages"]
    else:
        raise ConfigError("tinyrs report: give --settings, --stages or --config")
    expected = eval_tasks(config) if config else None
    external = {name: f"{spec['repo']}@{spec['revision']}" for name, spec in external_models(config).items()
                if name in stages} if config else {}
    if settings:
        external.update(settings.external)
    external.update(_external(args.external))
    grpo_log = args.grpo_log or (settings.grpo_log if settings else None)
    reward_check = args.reward_check or (settings.reward_check if settings else None)
    if reward_check and not grpo_log:
        raise ConfigError("tinyrs report: the reward check (--reward-check, or the settings' reward_check) is shown "
                          "in the GRPO section: give its GRPO log too (--grpo-log, or the settings' grpo_log)")
    print(write_report(args.eval_dir, stages, args.out_dir, expected, external, grpo_log, reward_check), end="")
    return 0
