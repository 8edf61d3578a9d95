# Pretrain, SFT and CoT-SFT: one trainer; a stage is its settings file (init model, data list, prompts).


def train_inputs(wc):
    stage = config["stages"][wc.stage]
    return {
        "init": model_manifest(stage["init"]),
        "data": list_manifest(stage["data"]),
        "settings": settings_file(wc.stage),
    }


rule train_stage:
    input:
        unpack(train_inputs),
    output:
        model_manifest("{stage}"),
    wildcard_constraints:
        stage="pretrain|sft|cot",
    log:
        log_file("train_{stage}"),
    resources:
        **job_resources(lambda wildcards: wildcards.stage),
    container:
        job_container(lambda wildcards: wildcards.stage)
    shell:
        "{resources.launch} tinyrs train --settings {input.settings} --init {input.init} --data {input.data} "
        "--out {WORK}/models/{wildcards.stage} --checkpoints {WORK}/checkpoints/{wildcards.stage} > {log} 2>&1"
