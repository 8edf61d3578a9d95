# Every stage of config `stages` (pretrain, SFT, CoT-SFT, GRPO, ...): one rule per stage, named after it, so that
# `--until sft` and `--forcerun grpo` read as they should. A stage's kind (its settings) picks the trainer.

for stage in pipeline.stages:

    rule:
        name:
            stage
        input:
            **pipeline.stage_inputs(stage),
        output:
            manifest=paths.model_manifest(stage),
        params:
            data=pipeline.data_argument(stage),
            out=output_folder("manifest"),
            checkpoints=paths.checkpoints(stage),
        log:
            paths.log(f"train_{stage}"),
        resources:
            **jobs.resources(stage),
        container:
            jobs.container(stage)
        shell:
            "{resources.launch} tinyrs train --settings {input.settings} --init {input.init} --data {params.data} "
            "--out {params.out} --checkpoints {params.checkpoints} > {log} 2>&1"
