"""The settings of the workflow's other jobs (``tinyrs.config.job_settings`` and the data lists'): what ``tinyrs
data fetch|correct|oversample``, ``tinyrs model tiny|fetch|to-mirror``, ``tinyrs demo-world`` and ``tinyrs report``
and ``tinyrs rewards sample`` read with ``--settings``."""
from __future__ import annotations

from dataclasses import dataclass

from tinyrs.settings.base import Settings
from tinyrs.settings.stages import GrpoSettings


@dataclass(frozen=True)
class FetchSettings(Settings):
    """``settings/fetch-<dataset>.json``: an entry of config ``hub.datasets`` and where it comes from."""

    dataset: str
    repo: str
    revision: str
    allow_patterns: list[str]
    unpack_shards: bool
    mirror: str | None       # the demo world's mirror, ``hub.mirror``, or null: the Hugging Face Hub


@dataclass(frozen=True)
class OversampleSettings(Settings):
    """A list's ``oversample`` section: the seed, the default factor and per-source factors (which may be left
    out: every source takes the default)."""

    seed: int
    default: float
    factors: dict[str, float] | None = None


@dataclass(frozen=True)
class DataListSettings(Settings):
    """``settings/data-<list>.json``: an entry of config ``data.lists`` with the ``data`` checks every list takes."""

    dataset: str
    file: str
    oversample: OversampleSettings | None   # null: every record once, shuffled with seed 0
    check_images: str
    max_rejected_fraction: float
    allow_empty: bool


@dataclass(frozen=True)
class TinyModelSettings(Settings):
    """``settings/model-base.json`` where ``base_model.source`` is tiny: the family and image sizes it is built for,
    and ``base_model.tiny_arch``: architecture values that differ from ``tinyrs.model.tiny.TINY_ARCH``."""

    family: str
    min_pixels: int
    max_pixels: int
    arch: dict[str, float] | None = None


@dataclass(frozen=True)
class ModelSettings(Settings):
    """``settings/model-<name>.json`` of a fetched model: the base model (``base_model.source: hub``) or a published
    checkpoint (``eval.external_models``, of whatever family it is: ``family`` null)."""

    stage: str
    repo: str
    revision: str
    mirror: str | None
    family: str | None


@dataclass(frozen=True)
class DemoWorldSettings(Settings):
    """``settings/demo-world.json``: config ``demo_world``."""

    seed: int
    scale: str
    world: str


@dataclass(frozen=True)
class ReportSettings(Settings):
    """``settings/report.json``: the report's columns, the GRPO log it plots (null: no GRPO column), and each
    published model's source (``repo@revision``); ``reward_check``: the GRPO reward check's two files, the model
    before the stage and after it (``tinyrs.grpo.reward_check``), when config ``eval.reward_check`` asks for it."""

    stages: list[str]
    grpo_log: str | None
    external: dict[str, str]
    reward_check: list[str] | None = None


@dataclass(frozen=True)
class RewardCheckSettings(Settings):
    """``settings/reward-check.json``: config ``eval.reward_check`` and the settings of the GRPO stage it checks
    (its data, rewards, prompts and sampling): what ``tinyrs rewards sample`` reads for either model."""

    prompts: int
    samples: int
    seed: int
    grpo: GrpoSettings
