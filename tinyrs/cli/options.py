"""``--settings FILE`` for the commands whose options a workflow rule gives as a settings file.

A rule passes its command one settings file (written by the stage_settings job from config) and its input and
output paths: it builds no flags and quotes nothing. The commands keep their options for use by hand; given
``--settings``, the options the file covers take its values.
"""
from __future__ import annotations

import argparse
from typing import Mapping


def add_settings_option(parser: argparse.ArgumentParser, what: str, covers: Mapping[str, str]) -> None:
    """``--settings``: ``what`` the file is; ``covers`` maps an option's destination to the settings key giving it."""
    options = ", ".join("--" + dest.replace("_", "-") for dest in covers)
    parser.add_argument("--settings", help=f"{what}, written by the workflow; gives {options}")
    parser.set_defaults(settings_covers=dict(covers))


def from_settings(args: argparse.Namespace) -> dict:
    """Set the options ``--settings`` covers from the file; returns the settings ({} without the option)."""
    from tinyrs.config import read_settings

    if not args.settings:
        return {}
    settings = read_settings(args.settings)
    for dest, key in args.settings_covers.items():
        setattr(args, dest, settings[key])
    return settings


def require(args: argparse.Namespace, *dests: str) -> None:
    """Options needed from the command line or ``--settings``: a ConfigError names those neither gave."""
    from tinyrs.config import ConfigError

    missing = ["--" + dest.replace("_", "-") for dest in dests if getattr(args, dest) is None]
    if missing:
        raise ConfigError(f"give {', '.join(missing)} or --settings")
