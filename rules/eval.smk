# Evaluation: every column of eval.stages (a stage or a published model) on every task. Job granularity is config
# (eval.group_tasks, eval.shards): the rules below all exist in every layout, and the layout decides which one
# writes <column>/<task>.metrics.json (ruleorder, tinyrs.pipeline.Pipeline.eval_rule_order).

workflow.ruleorder(*pipeline.eval_rule_order())

wildcard_constraints:
    stage=one_of(pipeline.columns),
    task=one_of(pipeline.tasks),


rule eval_stage:  # eval.group_tasks: one job per column runs every task (the model is loaded once)
    input:
        model=paths.model_manifest("{stage}"),
        data=paths.fetched("eval"),
        settings=paths.settings("eval-{stage}"),
    output:
        metrics=[paths.eval_metrics("{stage}", task) for task in pipeline.tasks],
    params:
        data_root=input_folder("data"),
        out_dir=output_folder("metrics"),
    log:
        paths.log("eval_{stage}"),
    resources:
        **jobs.resources("eval"),
    container:
        jobs.container("eval")
    shell:
        "{resources.launch} tinyrs eval run --settings {input.settings} --model {input.model} "
        "--data-root {params.data_root} --out-dir {params.out_dir} > {log} 2>&1"


rule eval_task:  # one job per task
    input:
        model=paths.model_manifest("{stage}"),
        data=paths.fetched("eval"),
        settings=paths.settings("eval-{stage}"),
    output:
        metrics=paths.eval_metrics("{stage}", "{task}"),
    params:
        data_root=input_folder("data"),
        out_dir=output_folder("metrics"),
    log:
        paths.log("eval_{stage}_{task}"),
    resources:
        **jobs.resources("eval"),
    container:
        jobs.container("eval")
    shell:
        "{resources.launch} tinyrs eval run --settings {input.settings} --model {input.model} "
        "--data-root {params.data_root} --out-dir {params.out_dir} --tasks {wildcards.task} > {log} 2>&1"


rule eval_shard:  # eval.shards > 1: one job per shard of a task's samples, merged by eval_merge
    input:
        model=paths.model_manifest("{stage}"),
        data=paths.fetched("eval"),
        settings=paths.settings("eval-{stage}"),
    output:
        metrics=paths.eval_shard_metrics("{stage}", "{task}", "{i}", "{n}"),
    wildcard_constraints:
        i=r"\d+",
        n=r"\d+",
    params:
        data_root=input_folder("data"),
        out_dir=output_folder("metrics"),
    log:
        paths.log("eval_{stage}_{task}_{i}-of-{n}"),
    resources:
        **jobs.resources("eval"),
    container:
        jobs.container("eval")
    shell:
        "{resources.launch} tinyrs eval run --settings {input.settings} --model {input.model} "
        "--data-root {params.data_root} --out-dir {params.out_dir} --tasks {wildcards.task} "
        "--shard {wildcards.i}/{wildcards.n} > {log} 2>&1"


rule eval_merge:
    input:
        shards=pipeline.eval_shards,
        settings=paths.settings("eval-{stage}"),
    output:
        metrics=paths.eval_metrics("{stage}", "{task}"),
    params:
        out_dir=output_folder("metrics"),
    log:
        paths.log("eval_merge_{stage}_{task}"),
    container:
        jobs.host()
    shell:
        "tinyrs eval merge --settings {input.settings} --task {wildcards.task} --out-dir {params.out_dir} > {log} 2>&1"


rule reward_check:  # eval.reward_check: the GRPO stage's init model and its result answer the same prompts
    input:
        model=paths.model_manifest("{model}"),
        data=pipeline.reward_check_data(),
        settings=paths.settings("reward-check"),
    output:
        rewards=paths.reward_samples("{model}"),
    wildcard_constraints:
        model=one_of(pipeline.reward_checked),
    params:
        data=input_folder("data"),
    log:
        paths.log("reward_check_{model}"),
    resources:
        **jobs.resources("reward_check"),
    container:
        jobs.container("reward_check")
    shell:
        "{resources.launch} tinyrs rewards sample --settings {input.settings} --model {input.model} "
        "--data {params.data} --out {output.rewards} > {log} 2>&1"
