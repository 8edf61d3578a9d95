"""Load, merge and validate the pipeline configuration; derive each stage's settings.

``config.yaml`` holds the real recipe; overlays (the demo's, a site's) are merged on top, key by key.
The merged result is checked against ``schema/config.schema.yaml`` before anything runs, and every
problem is reported with the dotted key and the file it came from.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Iterable

import yaml

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"
TRAIN_STAGES = ("pretrain", "sft", "cot")
MODEL_STAGES = ("base", *TRAIN_STAGES, "grpo")
DATA_CHECKS = ("check_images", "max_rejected_fraction", "allow_empty")  # data.* keys every list's settings carry


class ConfigError(ValueError):
    """A configuration problem, phrased for the person who edits config.yaml."""


def deep_merge(base: dict, overlay: dict) -> dict:
    """Merge ``overlay`` into a copy of ``base``: nested dicts merge, everything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    return data


def _key_origin(key_path: list, layers: list[tuple[str, dict]]) -> str:
    """Name the last file that sets ``key_path`` (or its nearest parent)."""
    for prefix_len in range(len(key_path), -1, -1):
        prefix = key_path[:prefix_len]
        for name, layer in reversed(layers):
            node: Any = layer
            for part in prefix:
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
            else:
                return name
    return layers[0][0] if layers else "config"


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(config: dict, layers: list[tuple[str, dict]] | None = None) -> None:
    """Raise ConfigError listing every schema violation with its dotted key."""
    import jsonschema

    layers = layers or [("config", config)]
    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and error.validator_value is False:
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            for key in extra:
                dotted = ".".join(map(str, path + [key]))
                problems.append(f"{_key_origin(path + [key], layers)}: unknown key '{dotted}'")
            continue
        dotted = ".".join(map(str, path)) or "<top level>"
        problems.append(f"{_key_origin(path, layers)}: key '{dotted}': {error.message}")
    problems.extend(_semantic_problems(config))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _semantic_problems(config: dict) -> list[str]:
    """Checks a schema cannot express: references between sections."""
    problems = []
    lists = config.get("data", {}).get("lists", {})
    for stage in TRAIN_STAGES:
        settings = config.get("stages", {}).get(stage, {})
        if settings.get("data") not in lists:
            problems.append(f"stages.{stage}.data: '{settings.get('data')}' is not a key of data.lists")
        allowed_inits = MODEL_STAGES[: MODEL_STAGES.index(stage)]
        if settings.get("init") not in allowed_inits:
            problems.append(f"stages.{stage}.init: '{settings.get('init')}' must be one of {list(allowed_inits)}")
    grpo_init = config.get("grpo", {}).get("init")
    if grpo_init not in MODEL_STAGES[:-1]:
        problems.append(f"grpo.init: '{grpo_init}' must be one of {list(MODEL_STAGES[:-1])}")
    styles = config.get("eval", {}).get("prompt_style", {})
    for stage in config.get("eval", {}).get("stages", []):
        if stage not in styles:
            problems.append(f"eval.prompt_style: no prompt style for evaluated stage '{stage}'")
    return problems


def load_config(paths: Iterable[str | os.PathLike], overrides: dict | None = None) -> dict:
    """Merge the given YAML files in order (later wins), then ``overrides``, and validate."""
    layers = [(str(p), read_yaml(p)) for p in paths]
    if overrides:
        layers.append(("overrides", overrides))
    if not layers:
        raise ConfigError("no configuration file given")
    merged: dict = {}
    for _, layer in layers:
        merged = deep_merge(merged, layer)
    validate(merged, layers)
    return merged


def train_settings(config: dict, stage: str) -> dict:
    """The SFT-family trainer's settings for ``stage``: defaults, the stage's overrides, the chat section."""
    if stage not in TRAIN_STAGES:
        raise ConfigError(f"'{stage}' is not a training stage; expected one of {TRAIN_STAGES}")
    settings = deep_merge(config["train_defaults"], config["stages"][stage])
    settings["stage"] = stage
    settings["chat"] = config["chat"]
    return settings


def grpo_settings(config: dict) -> dict:
    settings = copy.deepcopy(config["grpo"])
    settings["chat"] = config["chat"]
    return settings


def eval_settings(config: dict, stage: str) -> dict:
    settings = {k: v for k, v in config["eval"].items() if k not in ("prompt_style", "stages")}
    settings["prompt_style"] = config["eval"]["prompt_style"][stage]
    settings["stage"] = stage
    settings["chat"] = config["chat"]
    return settings


def settings_text(settings: dict) -> str:
    """Canonical JSON of a stage's settings: equal settings give byte-equal files."""
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def read_settings(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def all_stage_settings(config: dict) -> dict[str, dict]:
    """Every settings file the workflow's rules read, by name."""
    settings = {stage: train_settings(config, stage) for stage in TRAIN_STAGES}
    settings["grpo"] = grpo_settings(config)
    for stage in config["eval"]["stages"]:
        settings[f"eval-{stage}"] = eval_settings(config, stage)
    for name, spec in config["data"]["lists"].items():
        settings[f"data-{name}"] = {**spec, **{key: config["data"][key] for key in DATA_CHECKS}}
    return settings


def write_stage_settings(config: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write ``<out_dir>/<name>.json`` for every stage, touching only files whose content changed.

    Rules take their settings file as an input, so changing one stage's parameters reruns that
    stage and what depends on it, and nothing else.
    """
    from tinyrs.io import write_text_if_changed

    paths = []
    for name, settings in all_stage_settings(config).items():
        path = Path(out_dir) / f"{name}.json"
        write_text_if_changed(path, settings_text(settings))
        paths.append(path)
    return paths
