# Data: (demo world) -> fetch each Hub dataset -> correct each training list -> oversample -> Parquet manifest.

if pipeline.demo:

    rule demo_world:
        input:
            settings=paths.settings("demo-world"),
        output:
            summary=paths.demo_world(),
        params:
            out=output_folder("summary"),
        log:
            paths.log("demo_world"),
        container:
            jobs.host()
        shell:
            "tinyrs demo-world --settings {input.settings} --out {params.out} > {log} 2>&1"


localrules: fetch_dataset


rule fetch_dataset:
    input:
        settings=paths.settings("fetch-{dataset}"),
        demo_world=pipeline.demo_world(),
    output:
        complete=paths.fetched("{dataset}"),
    wildcard_constraints:
        dataset=one_of(pipeline.datasets),
    params:
        out=output_folder("complete"),
    log:
        paths.log("fetch_{dataset}"),
    container:
        jobs.host()
    shell:
        "tinyrs data fetch --settings {input.settings} --out {params.out} > {log} 2>&1"


rule correct_list:
    input:
        unpack(pipeline.list_inputs),
    output:
        report=paths.corrected("{name}"),
    wildcard_constraints:
        name=one_of(pipeline.lists),
    params:
        image_root=input_folder("fetched"),
        out_dir=output_folder("report"),
    log:
        paths.log("correct_{name}"),
    container:
        jobs.host()
    shell:
        "tinyrs data correct --settings {input.settings} --image-root {params.image_root} --workers {threads} "
        "--out-dir {params.out_dir} > {log} 2>&1"


rule oversample_list:
    input:
        corrected=paths.corrected("{name}"),
        settings=paths.settings("data-{name}"),
    output:
        manifest=paths.list_manifest("{name}"),
        records=paths.list_json("{name}"),
    wildcard_constraints:
        name=one_of(pipeline.lists),
    params:
        in_dir=input_folder("corrected"),
        out_dir=output_folder("manifest"),
    log:
        paths.log("oversample_{name}"),
    container:
        jobs.host()
    shell:
        "tinyrs data oversample --settings {input.settings} --in-dir {params.in_dir} --out-dir {params.out_dir} "
        "> {log} 2>&1"
