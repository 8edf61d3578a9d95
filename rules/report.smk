# Report: every task x every evaluated stage and published model, as Markdown, CSV, Parquet and one plot per
# task family.

import shlex

from tinyrs.report import plot_file_name

FAMILIES = sorted({task["family"] for task in config["eval"]["tasks"].values()})


rule report:
    input:
        [eval_metrics(stage, task) for stage in config["eval"]["stages"] for task in config["eval"]["tasks"]],
    output:
        report_outputs(),
        [report(f"{WORK}/report/{plot_file_name(family)}", category="Results") for family in FAMILIES],
    params:
        stages=",".join(config["eval"]["stages"]),
        external=" ".join(f"--external {shlex.quote(name + '=' + spec['repo'] + '@' + spec['revision'])}"
                          for name, spec in EXTERNAL.items()),
    log:
        log_file("report"),
    shell:
        "tinyrs report --eval-dir {WORK}/eval --stages {params.stages} {params.external} --out-dir {WORK}/report "
        "> {log} 2>&1 && cat {WORK}/report/results.md"
