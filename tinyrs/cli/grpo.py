"""``tinyrs grpo``: ``tinyrs train`` for a GRPO stage, under the options it had before stages were a table."""
from __future__ import annotations

from tinyrs.cli.train import add_output_options, train


def register(subparsers) -> None:
    parser = subparsers.add_parser("grpo", help="run a GRPO stage (the same as tinyrs train)")
    parser.add_argument("--settings", required=True, help="GRPO settings JSON (written by the Snakefile)")
    parser.add_argument("--init", required=True, help="model directory (or its tinyrs_manifest.json) to start from")
    parser.add_argument("--dataset", dest="data", required=True,
                        help="the GRPO DatasetDict directory (save_to_disk layout)")
    add_output_options(parser)
    parser.set_defaults(func=train)
