# GRPO: TRL's GRPOTrainer from the CoT model, format + task-aware accuracy rewards.


rule grpo:
    input:
        init=paths.model_manifest(config["grpo"]["init"]),
        dataset=paths.fetched(config["grpo"]["dataset"]),
        settings=paths.settings("grpo"),
    output:
        manifest=paths.model_manifest("grpo"),
    params:
        dataset=input_folder("dataset"),
        out=output_folder("manifest"),
        checkpoints=paths.checkpoints("grpo"),
    log:
        paths.log("grpo"),
    resources:
        **jobs.resources("grpo"),
    container:
        jobs.container("grpo")
    shell:
        "{resources.launch} tinyrs grpo --settings {input.settings} --init {input.init} --dataset {params.dataset} "
        "--out {params.out} --checkpoints {params.checkpoints} > {log} 2>&1"
