"""The pipeline as the Snakefile's rules see it: every value a rule reads of the configuration, computed here so
that the rule files only name files and commands (docs/design.md, "Thin rules").

The Snakefile makes one ``Pipeline(config)``. It gives the work directory's paths (``tinyrs.paths``, the same
names the commands write), the settings files the stage_settings jobs write, wildcard constraints, the inputs
that depend on config, and which eval rule writes a task's metrics in the configured layout. ``input_folder``
and ``output_folder`` are params functions: a command takes a folder where its rule declares a file in it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable

from tinyrs.config import (eval_tasks, external_models, hub_mirror, reward_check_models, reward_curve_stage,
                           stage_kind, stages, workflow_settings)
from tinyrs.paths import WorkPaths, mirror_dir

# The rules that can write <column>/<task>.metrics.json: one job per column (all its tasks, the model loaded once),
# one job per task, or the merge of a task's shards (each an eval_shard job). All exist whatever the layout.
EVAL_RULES = ("eval_stage", "eval_task", "eval_merge")


def one_of(names: Iterable[str]) -> str:
    """A wildcard constraint matching exactly these names."""
    return "|".join(re.escape(name) for name in names)


def input_folder(name: str, up: int = 1) -> Callable:
    """A params function: the folder ``up`` levels above the rule's input ``name`` (its first file, for a list)."""
    return lambda wildcards, input: _folder(input[name], up)


def output_folder(name: str) -> Callable:
    """A params function: the folder of the rule's output ``name`` (its first file, for a list)."""
    return lambda wildcards, output: _folder(output[name], 1)


def _folder(files, up: int) -> str:
    return str(Path(files if isinstance(files, str) else files[0]).parents[up - 1])


class Pipeline:
    """What the rules read of ``config``: paths, settings, wildcard values, config-dependent inputs."""

    def __init__(self, config: dict):
        self.config = config
        self.paths = WorkPaths(config["workdir"])
        self.settings = workflow_settings(config)
        self.demo = bool(config["demo_world"])
        self.mirror = hub_mirror(config)
        self.external = external_models(config)
        self.datasets = list(config["hub"]["datasets"])
        self.lists = config["data"]["lists"]
        self.stages = stages(config)
        # the lists some stage trains on (what the tiny demo model's tokenizer learns from)
        self.trained_lists = list(dict.fromkeys(entry["data"] for stage, entry in self.stages.items()
                                                if stage_kind(config, stage).data == "lists"))
        self.rewarded = reward_curve_stage(config)   # the GRPO stage whose rewards the report plots, or None
        self.reward_checked = reward_check_models(config)   # its init and itself, when eval.reward_check is set
        self.columns = config["eval"]["stages"]
        self.tasks = list(eval_tasks(config))
        self.families = sorted({task["family"] for task in eval_tasks(config).values()})
        # the demo's stand-ins for published models: folder in its mirror -> the model's name
        self.stand_ins = {mirror_dir(self.mirror, spec["repo"]).name: name
                          for name, spec in self.external.items()} if self.demo else {}

    def demo_world(self) -> list[str]:
        """The generated Hub mirror, which every download of the demo reads (nothing outside the demo)."""
        return [self.paths.demo_world()] if self.demo else []

    def list_inputs(self, wildcards) -> dict[str, str]:
        """A data list's fetched dataset and its settings."""
        dataset = self.lists[wildcards.name]["dataset"]
        return {"fetched": self.paths.fetched(dataset), "settings": self.paths.settings(f"data-{wildcards.name}")}

    def stage_inputs(self, stage: str) -> dict[str, str]:
        """A stage's inputs: the model it starts from, what it trains on (by its kind: a list's manifest or a
        fetched dataset's completion marker), its settings."""
        entry = self.stages[stage]
        lists = stage_kind(self.config, stage).data == "lists"
        data = self.paths.list_manifest(entry["data"]) if lists else self.paths.fetched(entry["data"])
        return {"init": self.paths.model_manifest(entry["init"]), "data": data, "settings": self.paths.settings(stage)}

    def reward_check_data(self) -> list[str]:
        """What GRPO's reward check samples from: the checked stage's fetched dataset (none without a check)."""
        return [self.paths.fetched(self.stages[self.rewarded]["data"])] if self.reward_checked else []

    def data_argument(self, stage: str) -> Callable:
        """A params function: what ``tinyrs train --data`` takes, the list's manifest itself or the dataset's folder."""
        if stage_kind(self.config, stage).data == "lists":
            return lambda wildcards, input: input.data
        return input_folder("data")

    def stand_in(self, folder: str) -> str:
        """The demo's stand-in for a published model in its mirror, complete once its config.json is there."""
        return str(mirror_dir(self.mirror, folder) / "config.json")

    def external_model_inputs(self, wildcards) -> list[str]:
        """What fetching a published model needs first: in the demo, its stand-in in the demo's mirror."""
        repo = self.external[wildcards.name]["repo"]
        return [self.stand_in(mirror_dir(self.mirror, repo).name)] if self.demo else []

    def stand_in_settings(self, wildcards) -> str:
        """The settings of the published model a demo stand-in stands for (its repo and the mirror)."""
        return self.paths.settings(f"model-{self.stand_ins[wildcards.folder]}")

    def eval_shards(self, wildcards) -> list[str]:
        count = self.config["eval"]["shards"]
        return [self.paths.eval_shard_metrics(wildcards.stage, wildcards.task, index, count) for index in range(count)]

    def eval_rule_order(self) -> tuple[str, ...]:
        """``EVAL_RULES``, the one that writes a task's metrics in the configured layout first (Snakemake's
        ruleorder): eval.group_tasks, else eval.shards > 1, else one job per task."""
        section = self.config["eval"]
        first = "eval_stage" if section["group_tasks"] else "eval_merge" if section["shards"] > 1 else "eval_task"
        return (first, *(rule for rule in EVAL_RULES if rule != first))
