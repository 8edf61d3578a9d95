# TinyRS / TinyRS-R1: pretrain -> SFT -> CoT-SFT -> GRPO -> eval of every stage -> report.
# Every rule calls one `tinyrs` subcommand; every stage's output is a file target.
# Real run: `snakemake --profile profiles/slurm`; demo world: `snakemake --profile profiles/demo`.

from tinyrs.config import all_stage_settings, validate

configfile: "config.yaml"
validate(config)

WORK = config["workdir"]
SETTINGS = f"{WORK}/settings"
STAGE_SETTINGS = all_stage_settings(config)   # computed here, written by the stage_settings jobs

include: "rules/common.smk"
include: "rules/settings.smk"    # each stage's settings file, written by a job (parsing writes nothing)
include: "rules/data.smk"        # demo world | Hub download -> correction -> oversampling -> manifests
include: "rules/model.smk"       # the base model (Qwen2-VL-2B-Instruct, or the tiny demo model)
include: "rules/train.smk"       # pretrain, SFT, CoT-SFT: one trainer, three settings files
include: "rules/grpo.smk"        # GRPO with task-aware rewards
include: "rules/eval.smk"        # every evaluated stage on every task
include: "rules/report.smk"      # tables and plots across stages


rule all:
    input:
        report_outputs(),
    default_target: True
