# Data: (demo world) -> fetch each Hub dataset -> correct each training list -> oversample -> Parquet manifest.

import json

DEMO = config["demo_world"]
MIRROR = f"{WORK}/demo-hub" if DEMO else config["hub"]["mirror"]
ALLOW_EMPTY = "--allow-empty" if config["data"]["allow_empty"] else ""


if DEMO:

    rule demo_world:
        output:
            f"{WORK}/demo-hub/demo_world.json",
        params:
            seed=DEMO["seed"],
            scale=DEMO["scale"],
        log:
            log_file("demo_world"),
        shell:
            "tinyrs demo-world --out {WORK}/demo-hub --seed {params.seed} --scale {params.scale} > {log} 2>&1"


localrules: fetch_dataset


rule fetch_dataset:
    input:
        [rules.demo_world.output[0]] if DEMO else [],
    output:
        f"{WORK}/hub/{{dataset}}/.complete",
    wildcard_constraints:
        dataset="versad|sft|grpo|eval",
    params:
        spec=lambda wc: config["hub"]["datasets"][wc.dataset],
        patterns=lambda wc: " ".join(f"--allow-pattern '{p}'" for p in config["hub"]["datasets"][wc.dataset]["allow_patterns"]),
        unpack=lambda wc: "--unpack-shards" if config["hub"]["datasets"][wc.dataset]["unpack_shards"] else "",
        mirror=f"--mirror {MIRROR}" if MIRROR else "",
    log:
        log_file("fetch_{dataset}"),
    shell:
        "tinyrs data fetch --dataset {wildcards.dataset} --repo {params.spec[repo]} "
        "--revision {params.spec[revision]} {params.patterns} {params.unpack} {params.mirror} "
        "--out {WORK}/hub/{wildcards.dataset} > {log} 2>&1"


def list_source(wc):
    spec = config["data"]["lists"][wc.name]
    return {"fetched": fetched(spec["dataset"]), "settings": settings_file(f"data-{wc.name}")}


rule correct_list:
    input:
        unpack(list_source),
    output:
        f"{WORK}/data/{{name}}/corrected/report.json",
    params:
        list_file=lambda wc: f"{hub_dir(config['data']['lists'][wc.name]['dataset'])}/{config['data']['lists'][wc.name]['file']}",
        image_root=lambda wc: hub_dir(config["data"]["lists"][wc.name]["dataset"]),
        check=config["data"]["check_images"],
        max_rejected_fraction=config["data"]["max_rejected_fraction"],
        allow_empty=ALLOW_EMPTY,
    log:
        log_file("correct_{name}"),
    shell:
        "tinyrs data correct --list {params.list_file} --image-root {params.image_root} --check {params.check} "
        "--max-rejected-fraction {params.max_rejected_fraction} {params.allow_empty} "
        "--workers {threads} --out-dir {WORK}/data/{wildcards.name}/corrected > {log} 2>&1"


def oversampling(name):
    return config["data"]["lists"][name]["oversample"] or {"seed": 0, "default": 1.0}


rule oversample_list:
    input:
        corrected=rules.correct_list.output[0],
        settings=settings_file("data-{name}"),
    output:
        manifest=f"{WORK}/data/{{name}}/manifest.parquet",
        records=f"{WORK}/data/{{name}}/list.json",
    params:
        factors=lambda wc: json.dumps(oversampling(wc.name)),
        seed=lambda wc: oversampling(wc.name)["seed"],
        allow_empty=ALLOW_EMPTY,
    log:
        log_file("oversample_{name}"),
    shell:
        "tinyrs data oversample --in-dir {WORK}/data/{wildcards.name}/corrected --factors '{params.factors}' "
        "--seed {params.seed} {params.allow_empty} --out-dir {WORK}/data/{wildcards.name} > {log} 2>&1"
