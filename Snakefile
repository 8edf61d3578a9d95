# TinyRS / TinyRS-R1: pretrain -> SFT -> CoT-SFT -> GRPO -> eval of every stage -> report.
# Every rule calls one `tinyrs` subcommand with its settings file, inputs and outputs; every stage's output is a
# file target. What a rule reads of the config comes from tinyrs.pipeline, its paths from tinyrs.paths.
# Real run: `snakemake --profile profiles/slurm`; demo world: `snakemake --profile profiles/demo`.

from snakemake.settings.types import DeploymentMethod
from tinyrs.cluster.workflow import RuleJobs
from tinyrs.config import exit_on_config_error, validate, workflow_layers
from tinyrs.pipeline import Pipeline, input_folder, one_of, output_folder

# Config errors name the file and the key: our code reads config.yaml first (a YAML error names it), and knows
# the layers Snakemake merged into `config` (config.yaml, each --configfile, the --config values).
# Overlays given with --configfile are parsed by Snakemake before this file runs: `tinyrs run ARGS` checks them
# (a YAML error names the file) and then runs `snakemake ARGS`.
with exit_on_config_error():
    CONFIG_LAYERS = workflow_layers("config.yaml", workflow.overwrite_configfiles, workflow.config_settings.config)
configfile: "config.yaml"
# With --sdm apptainer (profiles/slurm) jobs run in their images and on their GPUs, training stages as GPUs x nodes
# processes; without it (demo, local) every job is one plain process and no job has an image.
CONTAINERS = DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method
with exit_on_config_error():
    validate(config, CONFIG_LAYERS, CONTAINERS)

pipeline = Pipeline(config)   # settings are computed here and written by the stage_settings jobs
paths = pipeline.paths
jobs = RuleJobs(config, CONTAINERS, workflow.deployment_settings.apptainer_args,
                f"{workflow.basedir}/containers/images.lock.json")

include: "rules/settings.smk"    # each job's settings file, written by a job (parsing writes nothing)
include: "rules/data.smk"        # demo world | Hub download -> correction -> oversampling -> manifests
include: "rules/model.smk"       # the base model of base_model.family (Hub, or the tiny demo model), published models
include: "rules/train.smk"       # every stage of config `stages` (pretrain, SFT, CoT-SFT, GRPO): a rule each
include: "rules/eval.smk"        # every evaluated stage on every task
include: "rules/report.smk"      # tables and plots across stages


rule all:
    input:
        **paths.report_tables(),
    default_target: True
