"""The kinds of model-producing stage, and what config, the workflow and ``tinyrs train`` need to know of each.

A stage is an entry of config ``stages`` (docs/design.md, "Adding a stage"); its ``kind`` names an entry of
``KINDS``. A kind is one settings class, one trainer module and one line here (docs/design.md, "Adding a stage
kind").
"""
from __future__ import annotations

from dataclasses import dataclass

from tinyrs.settings import GrpoSettings, SftSettings, StageSettings


@dataclass(frozen=True)
class Kind:
    """What differs between stage kinds outside their trainer.

    ``defaults``: the config section the stage's own settings override. ``data``: what the stage's ``data`` names,
    ``"lists"`` (a key of ``data.lists``: the stage trains on the list's Parquet manifest) or ``"datasets"`` (a key
    of ``hub.datasets``: the fetched dataset's folder). ``checks``: the start-up checks' command (packages and
    inputs of ``tinyrs.preflight``). ``trainer``: the module whose ``train(settings, init_model, data, out_dir,
    checkpoint_dir)`` runs a stage of the kind. ``settings``: the class of its settings file (``tinyrs.settings``),
    what its trainer takes.
    """

    name: str
    defaults: str
    data: str
    checks: str
    trainer: str
    settings: type[StageSettings]


KINDS = {kind.name: kind for kind in (
    Kind("sft", defaults="train_defaults", data="lists", checks="train", trainer="tinyrs.sft.trainer",
         settings=SftSettings),
    Kind("grpo", defaults="grpo_defaults", data="datasets", checks="grpo", trainer="tinyrs.grpo.trainer",
         settings=GrpoSettings),
)}
