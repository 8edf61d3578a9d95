# TinyRS / TinyRS-R1: pretrain -> SFT -> CoT-SFT -> GRPO -> eval of every stage -> report.
# Every rule calls one `tinyrs` subcommand; every stage's output is a file target.
# Real run: `snakemake --profile profiles/slurm`; demo world: `snakemake --profile profiles/demo`.

from snakemake.settings.types import DeploymentMethod
from tinyrs.config import all_stage_settings, exit_on_config_error, validate, workflow_layers

# Config errors name the file and the key: our code reads config.yaml first (a YAML error names it), and knows
# the layers Snakemake merged into `config` (config.yaml, each --configfile, the --config values).
# Overlays given with --configfile are parsed by Snakemake before this file runs: `tinyrs run ARGS` checks them
# (a YAML error names the file) and then runs `snakemake ARGS`.
with exit_on_config_error():
    CONFIG_LAYERS = workflow_layers("config.yaml", workflow.overwrite_configfiles, workflow.config_settings.config)
configfile: "config.yaml"
with exit_on_config_error():
    # training stages run as GPUs x nodes processes only in their containers (rules/common.smk), else as one
    validate(config, CONFIG_LAYERS, DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method)

WORK = config["workdir"]
SETTINGS = f"{WORK}/settings"
STAGE_SETTINGS = all_stage_settings(config)   # computed here, written by the stage_settings jobs

include: "rules/common.smk"
include: "rules/settings.smk"    # each stage's settings file, written by a job (parsing writes nothing)
include: "rules/data.smk"        # demo world | Hub download -> correction -> oversampling -> manifests
include: "rules/model.smk"       # the base model of base_model.family (from the Hub, or the tiny demo model)
include: "rules/train.smk"       # pretrain, SFT, CoT-SFT: one trainer, three settings files
include: "rules/grpo.smk"        # GRPO with task-aware rewards
include: "rules/eval.smk"        # every evaluated stage on every task
include: "rules/report.smk"      # tables and plots across stages


rule all:
    input:
        report_outputs(),
    default_target: True
