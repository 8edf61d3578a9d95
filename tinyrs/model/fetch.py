"""Fetching the real base model: the Hugging Face Hub, or a local mirror on air-gapped clusters."""
from __future__ import annotations

import shutil
from pathlib import Path


def fetch_model(repo: str, revision: str, out_dir: str, mirror: str | None = None) -> dict:
    """Place a snapshot of ``repo`` in ``out_dir``; a mirror holds it at ``<mirror>/<name after the slash>``."""
    out = Path(out_dir)
    if mirror:
        source = Path(mirror) / repo.split("/")[-1]
        if not source.is_dir():
            raise FileNotFoundError(f"model mirror {source} does not exist (looked for repo {repo})")
        shutil.copytree(source, out, dirs_exist_ok=True)
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo, revision=revision, local_dir=str(out))
    return {"repo": repo, "revision": revision, "mirror": mirror}
