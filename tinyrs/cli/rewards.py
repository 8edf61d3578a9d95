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
    sample = commands.add_parser(
        "sample", help="GRPO's reward check: a model's sampled answers to the GRPO stage's prompts, scored")
    sample.add_argument("--settings", required=True, help="settings/reward-check.json (written by the Snakefile)")
    sample.add_argument("--model", required=True, help="model directory (or its tinyrs_manifest.json)")
    sample.add_argument("--data", required=True, help="the GRPO stage's DatasetDict directory")
    sample.add_argument("--out", required=True, help="the JSON file to write")
    sample.set_defaults(func=_sample)


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


def _sample(args: argparse.Namespace) -> int:
    from tinyrs.grpo.reward_check import sample_rewards
    from tinyrs.io import model_dir_of, write_json
    from tinyrs.settings import RewardCheckSettings

    settings = RewardCheckSettings.from_file(args.settings)
    result = sample_rewards(settings.grpo, str(model_dir_of(args.model)), args.data, settings.prompts,
                            settings.samples, settings.seed)
    write_json(args.out, result, indent=1)
    print(f"tinyrs rewards sample: {len(result['prompts'])} prompts x {settings.samples} samples -> {args.out}")
    return 0
