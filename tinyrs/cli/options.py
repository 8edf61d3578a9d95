"""``--settings FILE`` for the commands whose options a workflow rule gives as a settings file.

A rule passes its command one settings file (written by the stage_settings job from config) and its input and
output paths: it builds no flags and quotes nothing. The commands keep their options for use by hand; given
``--settings``, the file is read once as its settings class (``tinyrs.settings``: an unknown, missing or wrongly
typed key is an error naming the file and the key), and the options it covers take its attributes' values.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Mapping

from tinyrs.settings import Settings


def add_settings_option(parser: argparse.ArgumentParser, what: str, kind: type[Settings],
                        covers: Mapping[str, str]) -> None:
    """``--settings``: ``what`` the file is, read as ``kind``; ``covers`` maps an option's destination to the
    attribute of ``kind`` giving it."""
    unknown = set(covers.values()) - {field.name for field in dataclasses.fields(kind)}
    if unknown:
        raise TypeError(f"{kind.__name__} has no attribute {', '.join(sorted(unknown))}")
    options = ", ".join("--" + dest.replace("_", "-") for dest in covers)
    parser.add_argument("--settings", help=f"{what}, written by the workflow; gives {options}")
    parser.set_defaults(settings_kind=kind, settings_covers=dict(covers))


def from_settings(args: argparse.Namespace) -> Settings | None:
    """Set the options ``--settings`` covers from the file; returns the settings (None without the option)."""
    if not args.settings:
        return None
    settings = args.settings_kind.from_file(args.settings)
    for dest, attribute in args.settings_covers.items():
        setattr(args, dest, getattr(settings, attribute))
    return settings


def require(args: argparse.Namespace, *dests: str) -> None:
    """Options needed from the command line or ``--settings``: a ConfigError names those neither gave."""
    from tinyrs.config import ConfigError

    missing = ["--" + dest.replace("_", "-") for dest in dests if getattr(args, dest) is None]
    if missing:
        raise ConfigError(f"give {', '.join(missing)} or --settings")
