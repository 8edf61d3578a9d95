"""The ``tinyrs`` command line: one subcommand family per module of this package.

Each module defines ``register(subparsers)``, adding its subcommands with ``set_defaults(func=...)``;
``func(args)`` returns the process exit code. Heavy imports happen inside the functions, so
``tinyrs --help`` and Snakemake's dry runs stay fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

FAMILIES = ("demo", "data", "model", "train", "grpo", "rewards", "eval", "report", "config", "cluster",
            "doctor", "run")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyrs", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        importlib.import_module(f"tinyrs.cli.{family}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tinyrs.config import ConfigError
    from tinyrs.io import DataError
    from tinyrs.settings import SettingsError

    parser = build_parser()
    args, passthrough = parser.parse_known_args(argv)
    if passthrough and not getattr(args, "takes_passthrough", False):
        parser.error(f"unrecognized arguments: {' '.join(passthrough)}")
    args.passthrough = passthrough
    try:
        return int(args.func(args) or 0)
    except (ConfigError, DataError, SettingsError) as err:
        print(f"tinyrs: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"tinyrs: missing input: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
