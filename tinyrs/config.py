"""Load, merge and validate the pipeline configuration; derive each stage's settings.

``config.yaml`` holds the real recipe; overlays (the demo's, a site's) are merged on top, key by key.
The merged result is checked against ``schema/config.schema.yaml`` before anything runs, and every
problem is reported with the dotted key and the file it came from.
"""
from __future__ import annotations

import contextlib
import copy
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import yaml

from tinyrs.kinds import KINDS, Kind
from tinyrs.paths import WorkPaths
from tinyrs.settings import (DataListSettings, DemoWorldSettings, EvalSettings, FetchSettings, JudgeSettings,
                             ModelSettings, ReportSettings, RewardCheckSettings, StageSettings,
                             TinyModelSettings)

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.yaml"
BASE = "base"                       # the base model: the init of the first stage, evaluated like a stage
RESERVED_NAMES = (BASE, "eval", "reward_check")   # not stage names: the base model; resources.jobs entries
API_KEY_SUFFIX = "_API_KEY"  # a judge's api_key_env must end so, or be listed in its allowed_key_envs
DATA_CHECKS = ("check_images", "max_rejected_fraction", "allow_empty")  # data.* keys every list's settings carry
# Keys that earlier configs had, by dotted name, and where their settings went: an overlay still setting one is
# refused as an unknown key would be, with this instead of "unknown key".
MOVED_KEYS = {
    "grpo": "was renamed: put these settings under `grpo_defaults` (all GRPO stages) or `stages.grpo`",
    "resources.account": "moved to the site profile: set `slurm_account` under `default-resources` in "
                         "profiles/<site>/config.yaml, the account of every job (docs/cluster.md, \"For sites\")",
}


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


def validate(config: dict, layers: list[tuple[str, dict]] | None = None, distributed: bool = False) -> None:
    """Raise ConfigError listing every problem with the file that set the key and its dotted name.

    ``layers`` are the (file name, content) pairs merged into ``config``, in order. ``distributed``: whether the
    training stages run as GPUs x nodes processes (``stage_world_sizes``) or as one process each.
    """
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
                origin = _key_origin(path + [key], layers)
                problems.append(f"{origin}: `{dotted}` {MOVED_KEYS[dotted]}" if dotted in MOVED_KEYS
                                else f"{origin}: unknown key '{dotted}'")
            continue
        problems.append(_problem(path, error.message, layers))
    if not problems:  # the checks below read the keys the schema requires
        problems = [_problem(path, message, layers)
                    for path, message in _semantic_problems(config, distributed)]
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def _problem(path: list, message: str, layers: list[tuple[str, dict]]) -> str:
    dotted = ".".join(map(str, path)) or "<top level>"
    return f"{_key_origin(path, layers)}: key '{dotted}': {message}"


def _semantic_problems(config: dict, distributed: bool) -> list[tuple[list, str]]:
    """Checks a schema cannot express: references between sections, batch sizes against the world size."""
    problems = []
    earlier, judges = [BASE], {}
    for stage, entry in stages(config).items():
        kind, settings = stage_kind(config, stage), stage_settings(config, stage)
        if stage in RESERVED_NAMES:
            problems.append((["stages", stage], f"'{stage}' is reserved ({', '.join(RESERVED_NAMES)}): name the stage "
                                                f"otherwise"))
        if entry["init"] not in earlier:
            problems.append((["stages", stage, "init"], f"'{entry['init']}' must be one of {earlier} (the base model "
                                                        f"or a stage listed before '{stage}')"))
        sources = config["data"]["lists"] if kind.data == "lists" else config["hub"]["datasets"]
        if entry["data"] not in sources:
            problems.append((["stages", stage, "data"], f"'{entry['data']}' is not a key of {_data_section(kind)} "
                                                        f"(a stage of kind {kind.name} reads one)"))
        if "global_batch_size" in settings:
            problems.extend(_batch_problems(config, stage, distributed))
        judge = getattr(typed_stage_settings(config, stage), "judge", None)
        if judge is not None:     # by the section that sets it: the stage's own, or its kind's defaults (once)
            judges[("stages", stage) if "judge" in entry else (kind.defaults,)] = judge
        earlier.append(stage)
    for section, judge in judges.items():
        problems.extend(([*section, "judge", key], message) for key, message in judge_problems(judge))
    problems.extend(_eval_column_problems(config))
    return problems


def _data_section(kind: Kind) -> str:
    return "data.lists" if kind.data == "lists" else "hub.datasets"


def _eval_column_problems(config: dict) -> list[tuple[list, str]]:
    """Every entry of eval.stages is the base model or a stage, with a prompt style, or a published model."""
    problems = []
    section, known = config["eval"], model_stages(config)
    if not eval_tasks(config):
        problems.append((["eval", "tasks"], "every task is dropped (null): keep or add at least one"))
    styles, external = section["prompt_style"], section["external_models"]
    for stage in section["stages"]:
        if stage in known:
            if stage not in styles:
                problems.append((["eval", "prompt_style"], f"no prompt style for evaluated stage '{stage}'"))
        elif stage not in external:
            problems.append((["eval", "stages"], f"'{stage}' is neither a pipeline stage {known} nor a "
                                                 f"key of eval.external_models"))
    folders: dict[str, str] = {}
    for name, spec in external.items():
        if name in known:
            problems.append((["eval", "external_models", name],
                             f"'{name}' is the name of a pipeline stage: give the published model another name"))
        folder = spec["repo"].split("/")[-1]
        if folders.setdefault(folder, spec["repo"]) != spec["repo"]:
            problems.append((["eval", "external_models", name, "repo"],
                             f"'{spec['repo']}' and '{folders[folder]}' would share the mirror folder '{folder}'"))
    return problems


def judge_problems(judge: JudgeSettings) -> list[tuple[str, str]]:
    """Where the LLM judge would send its key, checked: ``(key of a judge section, problem)`` pairs.

    The key (the value of the variable named by ``api_key_env``) goes as a Bearer header to ``base_url``.
    So ``base_url`` must be https, or plain http to a loopback host (the request never leaves the machine),
    or plain http anywhere with ``allow_insecure_http: true``; and ``api_key_env`` must name an ``*_API_KEY``
    variable or one listed in ``allowed_key_envs``, so that a config cannot send another service's token.
    """
    problems = []
    url = judge.base_url
    if url is not None:
        scheme, host = _scheme_and_host(url)
        if scheme not in ("http", "https") or not host:
            problems.append(("base_url", f"'{url}' is not an http:// or https:// URL"))
        elif scheme == "http" and not _is_loopback(host) and not judge.allow_insecure_http:
            problems.append(("base_url", f"'{url}' would send the judge's requests and its key unencrypted; use "
                                         f"https://, or set judge.allow_insecure_http: true (plain http to "
                                         f"localhost needs no flag)"))
    name = judge.api_key_env
    if not name.endswith(API_KEY_SUFFIX) and name not in judge.allowed_key_envs:
        problems.append(("api_key_env", f"'{name}' is not an *{API_KEY_SUFFIX} variable; the judge sends its value "
                                        f"to judge.base_url: list it in judge.allowed_key_envs to allow that"))
    return problems


def _scheme_and_host(url: str) -> tuple[str, str | None]:
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "", None


def _is_loopback(host: str) -> bool:
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _batch_problems(config: dict, stage: str, distributed: bool) -> list[tuple[list, str]]:
    """The trainer's gradient accumulation is global / (per-device x world size): it must be a whole number."""
    world_size = stage_world_sizes(config, distributed)[stage]
    settings = stage_settings(config, stage)
    global_batch, per_device = settings["global_batch_size"], settings["per_device_batch_size"]
    if global_batch % (per_device * world_size) == 0:
        return []
    own = "global_batch_size" in config["stages"][stage]
    section = ["stages", stage] if own else [stage_kind(config, stage).defaults]
    return [(section + ["global_batch_size"],
             f"{global_batch} is not a multiple of per_device_batch_size {per_device} x world size {world_size} of "
             f"stage '{stage}' ({_world_size_source(config, stage, distributed)})")]


def _world_size_source(config: dict, stage: str, distributed: bool) -> str:
    if distributed:
        return f"GPUs per node x nodes of {job_key(config, stage)}"
    return "one process: stages run without containers"


def stage_world_sizes(config: dict, distributed: bool) -> dict[str, int]:
    """How many processes each stage runs as.

    Distributed (the stages run in their containers, profiles/slurm): GPUs per node x nodes of the stage's
    job (``stage_resources``). Otherwise (the demo and local runs) every stage is one plain process.
    """
    jobs = stage_resources(config)["jobs"] if distributed and "resources" in config else {}
    return {stage: max(1, jobs[stage]["gpus_per_node"] * jobs[stage]["nodes"]) if stage in jobs else 1
            for stage in stages(config)}


def job_key(config: dict, job: str) -> str:
    """Where config sets job ``job`` (a stage, or eval): its ``resources.jobs`` entry, else its kind's."""
    if job in config["resources"]["jobs"] or job not in stages(config):
        return f"resources.jobs.{job}"
    return f"resources.kinds.{stages(config)[job]['kind']}"


def stage_resources(config: dict) -> dict:
    """The ``resources`` section with a job for every stage: its own ``resources.jobs`` entry, else its kind's
    ``resources.kinds`` entry (a new stage needs no resources of its own)."""
    resources = config["resources"]
    by_kind = {stage: resources["kinds"][entry["kind"]] for stage, entry in stages(config).items()
               if entry["kind"] in resources.get("kinds", {})}
    return {**resources, "jobs": {**by_kind, **resources["jobs"]}}


def workflow_layers(config_file: str | os.PathLike, overlay_files: Iterable[str | os.PathLike],
                    cli_values: dict) -> list[tuple[str, dict]]:
    """The layers Snakemake merges into ``config``, by name, so that errors name the file that set a key.

    Snakemake reads the Snakefile's ``configfile:`` (``config_file``), then each ``--configfile``
    (``overlay_files``) and the ``--config`` values, and hands the workflow only the merged result. Call this
    before the ``configfile:`` directive: a YAML error in ``config_file`` is then a ConfigError naming it.
    """
    layers = [(str(path), read_yaml(path)) for path in (config_file, *overlay_files)]
    if cli_values:
        layers.append(("--config", dict(cli_values)))
    return layers


@contextlib.contextmanager
def exit_on_config_error() -> Iterator[None]:
    """For the Snakefile: a ConfigError ends the run with its message and exit status 2, as ``tinyrs`` does,
    instead of Snakemake's report with a traceback into our code."""
    try:
        yield
    except ConfigError as err:
        print(f"tinyrs: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


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


def stages(config: dict) -> dict[str, dict]:
    """The stage table: every model-producing stage, in order, by name (an overlay drops a stage by setting it to
    null)."""
    return {name: entry for name, entry in config["stages"].items() if entry is not None}


def model_stages(config: dict) -> list[str]:
    """Every model the pipeline makes or starts from: the base model, then the stages."""
    return [BASE, *stages(config)]


def stage_kind(config: dict, stage: str) -> Kind:
    return KINDS[stages(config)[stage]["kind"]]


def stage_settings(config: dict, stage: str) -> dict:
    """A stage's settings: its kind's defaults, the stage's own entry over them, its name, the chat section."""
    table = stages(config)
    if stage not in table:
        raise ConfigError(f"'{stage}' is not a stage; expected one of {list(table)}")
    settings = deep_merge(config[stage_kind(config, stage).defaults], table[stage])
    settings["stage"] = stage
    settings["chat"] = config["chat"]
    return settings


def typed_stage_settings(config: dict, stage: str) -> StageSettings:
    """``stage_settings`` as its kind's settings object, what ``tinyrs train`` builds from the settings file."""
    return stage_kind(config, stage).settings.from_dict(stage_settings(config, stage), f"stages.{stage}")


def eval_tasks(config: dict) -> dict[str, dict]:
    """The eval tasks, by key, in order (an overlay drops a task by setting it to null, as a stage)."""
    return {key: task for key, task in config["eval"]["tasks"].items() if task is not None}


def external_models(config: dict) -> dict[str, dict]:
    """The published checkpoints evaluated: the keys of eval.external_models named in eval.stages, in that order."""
    catalogue = config["eval"]["external_models"]
    return {name: catalogue[name] for name in config["eval"]["stages"] if name in catalogue}


def eval_settings(config: dict, stage: str) -> dict:
    """The eval settings of one report column: a pipeline stage, or a published model (eval.external_models)."""
    section = config["eval"]
    settings = {k: v for k, v in section.items()
                if k not in ("prompt_style", "stages", "external_models", "reward_check")}
    settings["tasks"] = eval_tasks(config)
    external = section["external_models"].get(stage) if stage not in model_stages(config) else None
    if external:
        settings["prompt_style"] = external["prompt_style"]
        settings["model"] = {"repo": external["repo"], "revision": external["revision"]}
    else:
        settings["prompt_style"] = section["prompt_style"][stage]
    settings["stage"] = stage
    settings["chat"] = config["chat"]
    return settings


def typed_eval_settings(config: dict, stage: str) -> EvalSettings:
    """``eval_settings`` as an ``EvalSettings``, what ``tinyrs eval`` builds from the settings file."""
    return EvalSettings.from_dict(eval_settings(config, stage), f"eval.stages.{stage}")


def reward_curve_stage(config: dict) -> str | None:
    """The stage whose rewards over training the report plots: the last evaluated stage of kind grpo, if any."""
    rewarded = [stage for stage in config["eval"]["stages"]
                if stage in stages(config) and stage_kind(config, stage).name == "grpo"]
    return rewarded[-1] if rewarded else None


def reward_check_models(config: dict) -> list[str]:
    """The models GRPO's reward check samples, the stage's init then the stage (``tinyrs.grpo.reward_check``), or
    none: no GRPO stage is evaluated, or config ``eval.reward_check`` is null."""
    rewarded = reward_curve_stage(config)
    if rewarded is None or not config["eval"].get("reward_check"):
        return []
    return [stages(config)[rewarded]["init"], rewarded]


def settings_text(settings: dict) -> str:
    """Canonical JSON of a stage's settings: equal settings give byte-equal files."""
    return json.dumps(settings, indent=2, sort_keys=True) + "\n"


def write_settings_file(path: str | os.PathLike, text: str, log_path: str | os.PathLike) -> None:
    """The stage_settings job: write a settings file only when its text changed (a rewrite reruns the jobs that
    read it), and say which in the job's log."""
    from tinyrs.io import write_text_if_changed

    changed = write_text_if_changed(path, text)
    Path(log_path).write_text(f"{path}: {'written' if changed else 'unchanged'}\n", encoding="utf-8")


def read_settings(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_eval_settings(path: str | os.PathLike) -> EvalSettings:
    """An eval column's settings file as an ``EvalSettings``: checked once, here."""
    return EvalSettings.from_file(path)


def read_stage_settings(path: str | os.PathLike) -> StageSettings:
    """A stage's settings file as its kind's settings object (``tinyrs.settings``): checked once, here."""
    settings = read_settings(path)
    kind = KINDS.get(settings.get("kind"))
    if kind is None:
        raise ConfigError(f"{path}: kind '{settings.get('kind')}' is not a stage kind ({', '.join(KINDS)})")
    return kind.settings.from_dict(settings, str(path))


def all_stage_settings(config: dict) -> dict[str, dict]:
    """The settings of every stage, eval column and data list, by name: what a stage's runs depend on. Each passes
    through its settings class, so the workflow writes no file that ``tinyrs train``, ``tinyrs eval`` or ``tinyrs
    data`` would refuse."""
    settings = {stage: typed_stage_settings(config, stage).to_dict() for stage in stages(config)}
    for stage in config["eval"]["stages"]:
        settings[f"eval-{stage}"] = typed_eval_settings(config, stage).to_dict()
    for name, spec in config["data"]["lists"].items():
        checks = {key: config["data"][key] for key in DATA_CHECKS}
        settings[f"data-{name}"] = DataListSettings.from_dict({**spec, **checks}, f"data.lists.{name}").to_dict()
    return settings


def hub_mirror(config: dict) -> str | None:
    """Where datasets and published checkpoints come from: the demo world's generated mirror, else ``hub.mirror``
    (None: the Hugging Face Hub)."""
    return WorkPaths(config["workdir"]).demo_hub() if config["demo_world"] else config["hub"]["mirror"]


def base_model_settings(config: dict) -> TinyModelSettings | ModelSettings:
    """``tinyrs model tiny``'s image sizes, or ``tinyrs model fetch``'s source of the base model."""
    base, defaults = config["base_model"], config["train_defaults"]
    if base["source"] == "tiny":
        arch = {"arch": base["tiny_arch"]} if base.get("tiny_arch") else {}
        return TinyModelSettings.from_dict({"family": base["family"], "min_pixels": defaults["min_pixels"],
                                            "max_pixels": defaults["max_pixels"], **arch}, "base_model")
    return ModelSettings.from_dict({"stage": BASE, "repo": base["repo"], "revision": base["revision"],
                                    "mirror": config["hub"]["mirror"], "family": base["family"]}, "base_model")


def job_settings(config: dict) -> dict[str, dict]:
    """The settings of the workflow's other jobs, by name: dataset downloads, the base model, the published
    checkpoints, the demo world and the report. Their rules pass them as --settings, like the stages'; each passes
    through its settings class (``tinyrs.settings.jobs``), which the command reading it builds again."""
    mirror = hub_mirror(config)
    typed = {f"fetch-{key}": FetchSettings.from_dict({"dataset": key, **spec, "mirror": mirror}, f"hub.datasets.{key}")
             for key, spec in config["hub"]["datasets"].items()}
    typed["model-base"] = base_model_settings(config)
    external = external_models(config)
    for name, spec in external.items():   # a published model is of whatever family it is
        typed[f"model-{name}"] = ModelSettings.from_dict(
            {"stage": name, "repo": spec["repo"], "revision": spec["revision"], "mirror": mirror, "family": None},
            f"eval.external_models.{name}")
    if config["demo_world"]:
        typed["demo-world"] = DemoWorldSettings.from_dict(dict(config["demo_world"]), "demo_world")
    rewarded = reward_curve_stage(config)
    checked = reward_check_models(config)
    if checked:
        typed["reward-check"] = RewardCheckSettings.from_dict(
            {**config["eval"]["reward_check"], "grpo": typed_stage_settings(config, rewarded).to_dict()},
            "eval.reward_check")
    paths = WorkPaths(config["workdir"])
    typed["report"] = ReportSettings.from_dict(
        {"stages": config["eval"]["stages"],
         "grpo_log": paths.train_log(rewarded) if rewarded else None,
         "external": {name: f"{spec['repo']}@{spec['revision']}" for name, spec in external.items()},
         **({"reward_check": [paths.reward_samples(model) for model in checked]} if checked else {})}, "eval.stages")
    return {name: settings.to_dict() for name, settings in typed.items()}


def workflow_settings(config: dict) -> dict[str, dict]:
    """Every settings file the workflow's rules read, by name (``settings/<name>.json``)."""
    return {**all_stage_settings(config), **job_settings(config)}


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
