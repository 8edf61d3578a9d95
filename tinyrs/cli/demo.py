"""``tinyrs demo-world``: generate the synthetic Hub mirror the demo pipeline trains on."""
from __future__ import annotations

import argparse

from tinyrs.cli.options import add_settings_option, from_settings
from tinyrs.settings import DemoWorldSettings


def run_demo_world(args: argparse.Namespace) -> int:
    from tinyrs.data.demo_world import TINYRS, build_demo_world, plan

    from_settings(args)
    summary = build_demo_world(args.out, args.seed, args.scale, args.world)
    if args.world != TINYRS:
        print(f"demo world {args.world} (seed {args.seed}, scale {args.scale}) written to {args.out}: "
              + ", ".join(f"{repo}: {summary[repo]}" for repo in summary if repo.startswith(args.world)))
        return 0
    sft = summary["VHM_dataset_sft"]
    print(f"demo world (seed {args.seed}, scale {args.scale}) written to {args.out}: "
          f"{summary['VHM_VersaD']['records']} pretrain, {sft['list_sft.json']['records']} SFT, "
          f"{sft['list_sft_reasoning.json']['records']} reasoning records, "
          f"{summary['VHM_dataset_grpo']['rows']} GRPO rows, "
          f"{len(plan.EVAL_TASKS)} eval tasks x {summary['sizes']['eval_per_task']}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo-world", help="write synthetic datasets laid out like the four Hub repositories",
        description="Write VHM_VersaD, VHM_dataset_sft, VHM_dataset_grpo and scorers_datasets_eval (synthetic, "
                    "deterministic for a seed) under --out, then demo_world.json with the counts; with --world "
                    "geovlm-r1, geovlm-r1-sft, geovlm-r1-grpo and geovlm-r1-eval instead.")
    add_settings_option(parser, "the demo world's settings (settings/demo-world.json)", DemoWorldSettings,
                        {"seed": "seed", "scale": "scale", "world": "world"})
    parser.add_argument("--out", required=True, help="directory to write (its four repository folders are replaced)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files (default 0)")
    parser.add_argument("--scale", choices=("tiny", "small"), default="tiny",
                        help="tiny: the 2-core demo (default); small: about 5x more")
    parser.add_argument("--world", choices=("tinyrs", "geovlm-r1"), default="tinyrs",
                        help="tinyrs: TinyRS's four repositories (default); geovlm-r1: GeoVLM-R1's three, in the "
                             "layout of recipes/geovlm-r1.yaml")
    parser.set_defaults(func=run_demo_world)
