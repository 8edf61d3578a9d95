"""``tinyrs run``: the workflow, started after every config file it will read has been checked.

Snakemake parses ``--configfile`` overlays (and a profile's ``configfile:``) before any workflow code runs, so
a YAML syntax error, a top-level list or a missing overlay there gets Snakemake's own message, which names no
file. ``tinyrs run ARGS`` reads those files as the Snakefile's checks would (errors name the file and the key),
then replaces itself with ``snakemake ARGS``: same arguments, same workflow, same exit status. Its own
environment's ``bin`` goes first on the jobs' PATH, so ``.venv/bin/tinyrs run ...`` needs no activated venv.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

CONFIG_FILE = "config.yaml"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="check the config files, then run snakemake with the same arguments",
        description=__doc__.splitlines()[0], add_help=False)
    # every argument after ``run`` is snakemake's: main() hands them over as ``passthrough``
    parser.set_defaults(func=_run, takes_passthrough=True)


def overlay_files(snakemake_args: list[str]) -> list[str]:
    """The ``--configfile`` overlays a snakemake command line reads: its own, else its profile's."""
    known = argparse.ArgumentParser(add_help=False, allow_abbrev=False)  # `--config k=v` is not `--configfile`
    known.add_argument("--profile")
    known.add_argument("--configfile", "--configfiles", nargs="+", default=None)
    args, _ = known.parse_known_args(snakemake_args)
    if args.configfile is not None:
        return args.configfile
    return _profile_configfiles(args.profile or os.environ.get("SNAKEMAKE_PROFILE"))


def _profile_configfiles(profile: str | None) -> list[str]:
    from tinyrs.config import ConfigError, read_yaml

    if not profile:
        return []
    candidates = [Path(profile), Path.home() / ".config" / "snakemake" / profile, Path("/etc/xdg/snakemake") / profile]
    found = next((p / "config.yaml" for p in candidates if (p / "config.yaml").is_file()), None)
    if found is None:
        raise ConfigError(f"profile '{profile}': no config.yaml in {', '.join(str(p) for p in candidates)}")
    files = {k.replace("_", "-"): v for k, v in read_yaml(found).items()}
    value = files.get("configfile", files.get("configfiles", []))
    return [value] if isinstance(value, str) else list(value)


def _run(args: argparse.Namespace) -> int:
    from tinyrs.config import load_config

    snakemake_args = [a for a in args.passthrough if a != "--"]
    overlays = [f for f in overlay_files(snakemake_args) if os.path.abspath(f) != os.path.abspath(CONFIG_FILE)]
    load_config([CONFIG_FILE, *overlays])
    # the snakemake installed with this tinyrs, else PATH's; the jobs' `tinyrs` commands find this one first
    bin_dir = str(Path(sys.executable).parent)
    executable = shutil.which("snakemake", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    if executable is None:
        print("tinyrs: snakemake is not installed", file=sys.stderr, flush=True)
        return 2
    env = dict(os.environ, PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    os.execve(executable, [executable, *snakemake_args], env)
