"""Fetching a model (the real base model, a published checkpoint): the Hugging Face Hub, or a local mirror on
air-gapped clusters. A mirror holds repo ``owner/name`` at ``<mirror>/<name>``, like the datasets' mirror."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tinyrs.config import ConfigError
from tinyrs.io import MANIFEST_NAME, model_dir_of
from tinyrs.model.families import FAMILIES, family_named
from tinyrs.paths import mirror_dir


def fetch_model(repo: str, revision: str, out_dir: str, mirror: str | None = None) -> dict:
    """Place a snapshot of ``repo`` in ``out_dir``; a mirror holds it at ``<mirror>/<name after the slash>``."""
    out = Path(out_dir)
    if mirror:
        source = mirror_dir(mirror, repo)
        if not source.is_dir():
            raise FileNotFoundError(f"model mirror {source} does not exist (looked for repo {repo})")
        shutil.copytree(source, out, dirs_exist_ok=True)
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo, revision=revision, local_dir=str(out))
    return {"repo": repo, "revision": revision, "mirror": mirror}


def check_family(model_dir: str | os.PathLike, family: str, repo: str) -> None:
    """The base model must be of ``base_model.family``: its config.json's ``model_type`` says which it is."""
    expected = family_named(family)
    model_type = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type == expected.model_type:
        return
    actual = next((f"set base_model.family: {f.name}" for f in FAMILIES.values() if f.model_type == model_type),
                  "no family of tinyrs has it")
    raise ConfigError(f"base_model.repo {repo} is a '{model_type}' model, but base_model.family {family} needs a "
                      f"'{expected.model_type}' model (such as {expected.example_repo}): {actual}")


def put_in_mirror(model: str | os.PathLike, repo: str, mirror: str | os.PathLike) -> Path:
    """Lay out a local model directory as repo ``repo`` of ``mirror`` (what ``fetch_model`` reads there).

    The demo puts its stand-ins for published checkpoints into its mirror so; a site can fill an air-gapped
    mirror from a model directory the same way. tinyrs' own manifest is left out (a Hub repo has none). The
    folder appears whole: it is written beside its place and renamed into it, replacing an earlier one.
    """
    source, target = model_dir_of(model), mirror_dir(mirror, repo)
    if not (source / "config.json").is_file():
        raise FileNotFoundError(f"{source} is not a model directory (no config.json)")
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(MANIFEST_NAME))
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)
    return target
