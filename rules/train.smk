# Pretrain, SFT and CoT-SFT: one trainer; a stage is its settings file (init model, data list, prompts).
# One rule per stage, named after it, so `--until sft` and `--forcerun cot` read as they should.

for stage in ("pretrain", "sft", "cot"):

    rule:
        name:
            stage
        input:
            init=paths.model_manifest(config["stages"][stage]["init"]),
            data=paths.list_manifest(config["stages"][stage]["data"]),
            settings=paths.settings(stage),
        output:
            manifest=paths.model_manifest(stage),
        params:
            out=output_folder("manifest"),
            checkpoints=paths.checkpoints(stage),
        log:
            paths.log(f"train_{stage}"),
        resources:
            **jobs.resources(stage),
        container:
            jobs.container(stage)
        shell:
            "{resources.launch} tinyrs train --settings {input.settings} --init {input.init} --data {input.data} "
            "--out {params.out} --checkpoints {params.checkpoints} > {log} 2>&1"
