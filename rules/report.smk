# Report: every task x every evaluated stage and published model, as Markdown, CSV, Parquet and one plot per
# task family.

import shlex

from pathlib import Path

from tinyrs.grpo_report import PLOT_FILE as GRPO_PLOT
from tinyrs.report import plot_file_name

FAMILIES = sorted({task["family"] for task in config["eval"]["tasks"].values()})


rule report:
    input:
        metrics=[eval_metrics(stage, task) for stage in config["eval"]["stages"] for task in config["eval"]["tasks"]],
        grpo=[model_manifest("grpo")] if "grpo" in config["eval"]["stages"] else [],
    output:
        report_outputs(),
        [report(f"{WORK}/report/{plot_file_name(family)}", category="Results") for family in FAMILIES],
        [report(f"{WORK}/report/{GRPO_PLOT}", category="GRPO")] if "grpo" in config["eval"]["stages"] else [],
    params:
        stages=",".join(config["eval"]["stages"]),
        external=" ".join(f"--external {shlex.quote(name + '=' + spec['repo'] + '@' + spec['revision'])}"
                          for name, spec in EXTERNAL.items()),
        grpo_log=lambda wildcards, input: f"--grpo-log {Path(input.grpo[0]).parent}/train_log.json" if input.grpo else "",
    log:
        log_file("report"),
    shell:
        "tinyrs report --eval-dir {WORK}/eval --stages {params.stages} {params.external} {params.grpo_log} --out-dir {WORK}/report "
        "> {log} 2>&1 && cat {WORK}/report/results.md"
