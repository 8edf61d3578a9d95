# GRPO: TRL's GRPOTrainer from the CoT model, format + task-aware accuracy rewards.


rule grpo:
    input:
        init=model_manifest(config["grpo"]["init"]),
        dataset=fetched(config["grpo"]["dataset"]),
        settings=settings_file("grpo"),
    output:
        model_manifest("grpo"),
    log:
        log_file("grpo"),
    resources:
        **job_resources("grpo"),
    container:
        job_container("grpo")
    shell:
        "{resources.launch} tinyrs grpo --settings {input.settings} --init {input.init} --dataset {WORK}/hub/grpo "
        "--out {WORK}/models/grpo --checkpoints {WORK}/checkpoints/grpo > {log} 2>&1"
