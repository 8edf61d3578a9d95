# Pretrain, SFT and CoT-SFT: one trainer; a stage is its settings file (init model, data list, prompts).
# One rule per stage, named after it, so `--until sft` and `--forcerun cot` read as they should.

for stage in ("pretrain", "sft", "cot"):

    rule:
        name:
            stage
        input:
            init=model_manifest(config["stages"][stage]["init"]),
            data=list_manifest(config["stages"][stage]["data"]),
            settings=settings_file(stage),
        output:
            model_manifest(stage),
        params:
            stage=stage,
        log:
            log_file(f"train_{stage}"),
        resources:
            **job_resources(stage),
        container:
            job_container(stage)
        shell:
            "{resources.launch} tinyrs train --settings {input.settings} --init {input.init} --data {input.data} "
            "--out {WORK}/models/{params.stage} --checkpoints {WORK}/checkpoints/{params.stage} > {log} 2>&1"
