"""``tinyrs rewards``: score saved completions offline with the configured GRPO rewards."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("rewards", help="GRPO rewards outside training")
    commands = parser.add_subparsers(dest="rewards_command", required=True)
    score = commands.add_parser(
        "score",
        help="score a JSONL of completions (see tinyrs.grpo.rewards.offline for the line formats)",
    )
    score.add_argument("--config", action="append", required=True, help="config.yaml, then overlays")
    score.add_argument("--input", required=True,
                       help="JSONL: completion + solution | answer_type | reward (optional task: by_task routing)")
    score.add_argument("--output", required=True, help="JSONL: every input field plus 'rewards'")
    score.add_argument("--stage", default="grpo", help="the GRPO stage (config stages) whose rewards score (default: grpo)")
    score.add_argument("--skip-bad-lines", action="store_true", help="count and report bad lines instead of failing")
    score.set_defaults(func=_score)


def _score(args: argparse.Namespace) -> int:
    import json

    from tinyrs.config import ConfigError, load_config, typed_stage_settings
    from tinyrs.grpo.rewards.offline import score_file
    from tinyrs.settings import GrpoSettings

    settings = typed_stage_settings(load_config(args.config), args.stage)
    if not isinstance(settings, GrpoSettings):
        raise ConfigError(f"--stage {args.stage}: a stage of kind {settings.kind}; rewards are a grpo stage's")
    summary = score_file(settings, args.input, args.output, args.skip_bad_lines)
    print(json.dumps(summary, indent=2))
    return 0
