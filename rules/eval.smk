# Evaluation: every stage in eval.stages on every task. Job granularity is config: one job per stage
# (group_tasks: model loaded once), one job per task, or n shard jobs per task merged afterwards.

EVAL = config["eval"]
TASKS = list(EVAL["tasks"])


def eval_inputs(wc):
    return {
        "model": model_manifest(wc.stage),
        "data": fetched("eval"),
        "settings": settings_file(f"eval-{wc.stage}"),
    }


EVAL_RUN = (
    "{resources.launch} tinyrs eval run --settings {input.settings} --model {input.model} --data-root "
    + hub_dir("eval")
    + " --out-dir "
    + WORK
    + "/eval/{wildcards.stage}"
)

if EVAL["group_tasks"]:

    rule eval_stage:
        input:
            unpack(eval_inputs),
        output:
            [eval_metrics("{stage}", task) for task in TASKS],
        log:
            log_file("eval_{stage}"),
        resources:
            **job_resources("eval"),
        container:
            job_container("eval")
        shell:
            EVAL_RUN + " > {log} 2>&1"

elif EVAL["shards"] == 1:

    rule eval_task:
        input:
            unpack(eval_inputs),
        output:
            eval_metrics("{stage}", "{task}"),
        log:
            log_file("eval_{stage}_{task}"),
        resources:
            **job_resources("eval"),
        container:
            job_container("eval")
        shell:
            EVAL_RUN + " --tasks {wildcards.task} > {log} 2>&1"

else:

    rule eval_shard:
        input:
            unpack(eval_inputs),
        output:
            f"{WORK}/eval/{{stage}}/{{task}}.shard-{{i}}-of-{EVAL['shards']}.metrics.json",
        log:
            log_file("eval_{stage}_{task}_{i}"),
        resources:
            **job_resources("eval"),
        container:
            job_container("eval")
        shell:
            EVAL_RUN + " --tasks {wildcards.task} --shard {wildcards.i}/" + str(EVAL["shards"]) + " > {log} 2>&1"

    rule eval_merge:
        input:
            lambda wc: [
                f"{WORK}/eval/{wc.stage}/{wc.task}.shard-{i}-of-{EVAL['shards']}.metrics.json"
                for i in range(EVAL["shards"])
            ],
        output:
            eval_metrics("{stage}", "{task}"),
        log:
            log_file("eval_merge_{stage}_{task}"),
        shell:
            "tinyrs eval merge --task {wildcards.task} --out-dir {WORK}/eval/{wildcards.stage} "
            "--shards " + str(EVAL["shards"]) + " > {log} 2>&1"
