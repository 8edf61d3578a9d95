"""``tinyrs doctor --stage STAGE``: a GPU stage's start-up checks, run from the configuration (tinyrs/preflight.py).

The stage commands run the same checks when they start; the doctor runs them ahead, in seconds: in the
stage's image on a GPU node, or here. Exit 0 when every check passes, 2 otherwise.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from tinyrs.preflight import INPUTS_BY_FLAG

    parser = subparsers.add_parser("doctor", help="check that a GPU stage can start here (packages, CUDA, inputs...)",
                                   description="Run a GPU stage's start-up checks from the configuration: one OK or "
                                               "FAIL line per check; exit 0 when all pass, 2 otherwise.")
    parser.add_argument("--stage", required=True,
                        help="a stage of config stages (pretrain, sft, cot, grpo, ...) or eval-<column> (a settings name)")
    parser.add_argument("--config", action="append", dest="configs", metavar="FILE",
                        help="config file(s) merged in order, later wins (default: config.yaml)")
    for flag, spec in INPUTS_BY_FLAG.items():
        parser.add_argument(flag, metavar="PATH", help=f"{spec.what} (default: where the workflow puts it)")
    parser.set_defaults(func=doctor)


def _command_and_job(config: dict, stage: str) -> tuple[str, str]:
    """The start-up checks' command (train, grpo, eval) and the resources.jobs entry of a settings name."""
    from tinyrs.config import stage_kind, stages

    return (stage_kind(config, stage).checks, stage) if stage in stages(config) else ("eval", "eval")


def _input_paths(args: argparse.Namespace, workflow_paths: dict[str, str]) -> dict[str, str]:
    """The workflow's input paths, replaced by the ones given as options; an option of another stage is an error."""
    from tinyrs.config import ConfigError
    from tinyrs.preflight import INPUTS_BY_FLAG

    given = {flag: getattr(args, spec.dest) for flag, spec in INPUTS_BY_FLAG.items() if getattr(args, spec.dest)}
    foreign = sorted(set(given) - set(workflow_paths))
    if foreign:
        raise ConfigError(f"{', '.join(foreign)}: not an input of stage {args.stage} (its inputs: "
                          f"{', '.join(workflow_paths)})")
    return {**workflow_paths, **given}


def _gpu_ask(config: dict, job: str):
    from tinyrs.cluster.resources import job_request
    from tinyrs.config import job_key, stage_resources
    from tinyrs.preflight import GpuAsk

    if not config.get("resources"):
        return GpuAsk(0, f"resources.jobs.{job}.gpus_per_node")
    return GpuAsk(job_request(stage_resources(config), job).gpus_per_node, f"{job_key(config, job)}.gpus_per_node")


def doctor(args: argparse.Namespace) -> int:
    from tinyrs import preflight
    from tinyrs.config import ConfigError, load_config, stages, typed_eval_settings, typed_stage_settings

    config = load_config(args.configs or ["config.yaml"])
    columns = {f"eval-{column}": column for column in config["eval"]["stages"]}
    if args.stage not in [*stages(config), *columns]:
        raise ConfigError(f"--stage {args.stage}: not a stage of this configuration (one of "
                          f"{', '.join([*stages(config), *columns])})")
    settings = (typed_eval_settings(config, columns[args.stage]) if args.stage in columns
                else typed_stage_settings(config, args.stage))
    command, job = _command_and_job(config, args.stage)
    paths = _input_paths(args, preflight.workflow_inputs(config, args.stage))
    host = preflight.probe(preflight.needed_packages(command, settings))
    checks = preflight.stage_checks(command, settings, paths, host, _gpu_ask(config, job), preflight.tested_versions())
    for name, problems in checks.items():
        if not problems:
            print(f"OK    {name}")
        for problem in problems:
            print(f"FAIL  {name}: {problem}")
    return 2 if any(checks.values()) else 0
