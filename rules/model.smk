# The base model of base_model.family: base_model.repo from the Hub (or a mirror), or the tiny demo model built offline.
# Published checkpoints (eval.external_models named in eval.stages): fetched like the base model, from the Hub or
# the mirror (hub.mirror; the demo's own mirror), then evaluated like a stage. In the demo, each stands in as a
# copy of the tiny base model that the demo puts into its mirror under the published repo's name.

if config["base_model"]["source"] == "tiny":

    rule base_model:
        input:
            settings=paths.settings("model-base"),
            lists=[paths.list_json(name) for name in pipeline.trained_lists],
        output:
            manifest=paths.model_manifest("base"),
        params:
            out=output_folder("manifest"),
        log:
            paths.log("base_model"),
        container:
            jobs.host()
        shell:
            "tinyrs model tiny --settings {input.settings} --corpus {input.lists} --out {params.out} > {log} 2>&1"

else:

    localrules: base_model

    rule base_model:
        input:
            settings=paths.settings("model-base"),
        output:
            manifest=paths.model_manifest("base"),
        params:
            out=output_folder("manifest"),
        log:
            paths.log("base_model"),
        container:
            jobs.host()
        shell:
            "tinyrs model fetch --settings {input.settings} --out {params.out} > {log} 2>&1"


if pipeline.external:

    localrules: external_model

    rule external_model:
        input:
            settings=paths.settings("model-{name}"),
            stand_in=pipeline.external_model_inputs,
        output:
            manifest=paths.model_manifest("{name}"),
        wildcard_constraints:
            name=one_of(pipeline.external),
        params:
            out=output_folder("manifest"),
        log:
            paths.log("external_model_{name}"),
        container:
            jobs.host()
        shell:
            "tinyrs model fetch --settings {input.settings} --out {params.out} > {log} 2>&1"


if pipeline.stand_ins:

    rule demo_published_model:
        input:
            settings=pipeline.stand_in_settings,
            model=paths.model_manifest("base"),
        output:
            config=pipeline.stand_in("{folder}"),
        wildcard_constraints:
            folder=one_of(pipeline.stand_ins),
        log:
            paths.log("demo_published_model_{folder}"),
        container:
            jobs.host()
        shell:
            "tinyrs model to-mirror --settings {input.settings} --model {input.model} > {log} 2>&1"
