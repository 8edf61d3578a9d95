"""Where the files of a run live: the layout of the work directory (docs/design.md) and the names of the files
each command writes into the folder it is given.

The workflow's rules declare their outputs with these functions and the commands write the same names, so a
rule's target and the file its command writes cannot drift apart. Paths are strings: the rules pass Snakemake
patterns such as ``"{stage}"`` for a name.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

MODEL_MANIFEST = "tinyrs_manifest.json"   # a model directory's manifest, written last (= complete)
FETCHED = ".complete"                     # a fetched dataset's record, written last
CORRECTED_REPORT = "report.json"          # `tinyrs data correct`'s report, written last
LIST_JSON = "list.json"                   # `tinyrs data oversample`: the training list ...
LIST_MANIFEST = "manifest.parquet"        # ... and its Parquet manifest
DEMO_WORLD_SUMMARY = "demo_world.json"    # `tinyrs demo-world`'s counts, written last
REPORT_FORMATS = ("md", "csv", "parquet")
TRAIN_LOG = "train_log.json"              # a trained model's log history (TRL's), beside its weights
GRPO_REWARDS_PLOT = "grpo_rewards.png"    # the report's plot of GRPO's rewards over training


def metrics_name(stem: str) -> str:
    """An eval job's target: ``<task>.metrics.json``, or a shard's (``shard_stem``)."""
    return f"{stem}.metrics.json"


def shard_stem(task: str, index: int | str, count: int | str) -> str:
    """The file stem of shard ``index`` of ``count`` of a task's samples."""
    return f"{task}.shard-{index}-of-{count}"


def report_table(fmt: str) -> str:
    return f"results.{fmt}"


def plot_name(family: str) -> str:
    """The report's plot of a task family: the family name made safe as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", family) + ".png"


def mirror_dir(mirror: str | os.PathLike, repo: str) -> Path:
    """Where a local mirror of the Hub holds ``repo``: ``<mirror>/<name after the slash>``."""
    return Path(mirror) / repo.split("/")[-1]


@dataclass(frozen=True)
class WorkPaths:
    """The work directory ``root`` (config ``workdir``): one method per kind of file in it."""

    root: str

    def settings(self, name: str) -> str:
        return f"{self.root}/settings/{name}.json"

    def log(self, name: str) -> str:
        return f"{self.root}/logs/{name}.log"

    def demo_hub(self) -> str:
        """The demo world's stand-in for the Hub (a mirror): the generator's output and the published stand-ins."""
        return f"{self.root}/demo-hub"

    def demo_world(self) -> str:
        return f"{self.demo_hub()}/{DEMO_WORLD_SUMMARY}"

    def hub(self, dataset: str) -> str:
        return f"{self.root}/hub/{dataset}"

    def fetched(self, dataset: str) -> str:
        return f"{self.hub(dataset)}/{FETCHED}"

    def corrected(self, name: str) -> str:
        return f"{self.root}/data/{name}/corrected/{CORRECTED_REPORT}"

    def list_json(self, name: str) -> str:
        return f"{self.root}/data/{name}/{LIST_JSON}"

    def list_manifest(self, name: str) -> str:
        return f"{self.root}/data/{name}/{LIST_MANIFEST}"

    def model_manifest(self, name: str) -> str:
        return f"{self.root}/models/{name}/{MODEL_MANIFEST}"

    def checkpoints(self, stage: str) -> str:
        return f"{self.root}/checkpoints/{stage}"

    def eval_metrics(self, column: str, task: str) -> str:
        return f"{self.root}/eval/{column}/{metrics_name(task)}"

    def eval_shard_metrics(self, column: str, task: str, index: int | str, count: int | str) -> str:
        return f"{self.root}/eval/{column}/{metrics_name(shard_stem(task, index, count))}"

    def report_tables(self) -> dict[str, str]:
        return {fmt: f"{self.root}/report/{report_table(fmt)}" for fmt in REPORT_FORMATS}

    def report_plot(self, family: str) -> str:
        return f"{self.root}/report/{plot_name(family)}"

    def train_log(self, stage: str) -> str:
        return f"{self.root}/models/{stage}/{TRAIN_LOG}"

    def reward_samples(self, model: str) -> str:
        """GRPO's reward check: the rewards of a model's sampled answers (``tinyrs rewards sample``)."""
        return f"{self.root}/rewards/{model}.json"

    def grpo_rewards_plot(self) -> str:
        return f"{self.root}/report/{GRPO_REWARDS_PLOT}"
