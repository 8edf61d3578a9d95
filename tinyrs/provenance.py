"""Where a result came from: code revision and package versions, recorded in every completion manifest."""
from __future__ import annotations

from pathlib import Path


def provenance() -> dict:
    """Code revision and package versions, for the completion manifest."""
    import importlib.metadata
    import subprocess

    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                  cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = None
    versions = {}
    for package in ("tinyrs", "torch", "transformers", "trl", "deepspeed", "accelerate"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {"code_revision": revision, "packages": versions}
