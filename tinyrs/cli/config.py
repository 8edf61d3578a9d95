"""``tinyrs config``: validate a configuration and write the per-stage settings files."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("config", help="check the configuration, write per-stage settings")
    commands = parser.add_subparsers(dest="config_command", required=True)
    check = commands.add_parser("check", help="merge and validate config files (later files win)")
    check.add_argument("--config", action="append", required=True, help="config.yaml, then overlays")
    check.set_defaults(func=_check)
    settings = commands.add_parser("settings", help="write <dir>/<stage>.json for every stage")
    settings.add_argument("--config", action="append", required=True)
    settings.add_argument("--out-dir", required=True)
    settings.set_defaults(func=_settings)


def _check(args: argparse.Namespace) -> int:
    from tinyrs.config import load_config

    load_config(args.config)
    print("tinyrs: configuration is valid")
    return 0


def _settings(args: argparse.Namespace) -> int:
    from tinyrs.config import load_config, write_stage_settings

    for path in write_stage_settings(load_config(args.config), args.out_dir):
        print(path)
    return 0
