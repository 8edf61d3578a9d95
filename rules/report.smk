# Report: every task x every evaluated stage and published model, as Markdown, CSV, Parquet and one plot per
# task family.


rule report:
    input:
        settings=paths.settings("report"),
        metrics=[paths.eval_metrics(column, task) for column in pipeline.columns for task in pipeline.tasks],
        grpo=[paths.model_manifest(pipeline.rewarded)] if pipeline.rewarded else [],   # its train_log.json
        reward_check=[paths.reward_samples(model) for model in pipeline.reward_checked],
    output:
        **paths.report_tables(),
        plots=[report(paths.report_plot(family), category="Results") for family in pipeline.families],
        grpo_plot=[report(paths.grpo_rewards_plot(), category="GRPO")] if pipeline.rewarded else [],
    params:
        eval_dir=input_folder("metrics", up=2),
        out_dir=output_folder("md"),
    log:
        paths.log("report"),
    container:
        jobs.host()
    shell:
        "tinyrs report --settings {input.settings} --eval-dir {params.eval_dir} --out-dir {params.out_dir} "
        "> {log} 2>&1 && cat {output.md}"
