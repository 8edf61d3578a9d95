# The base model: Qwen2-VL-2B-Instruct from the Hub (or a mirror), or the tiny demo model built offline.

BASE = config["base_model"]

if BASE["source"] == "tiny":

    rule base_model:
        input:
            lists=expand(f"{WORK}/data/{{name}}/list.json", name=list(config["data"]["lists"])),
        output:
            model_manifest("base"),
        params:
            max_pixels=config["train_defaults"]["max_pixels"],
            min_pixels=config["train_defaults"]["min_pixels"],
        log:
            log_file("base_model"),
        shell:
            "tinyrs model tiny --out {WORK}/models/base --corpus {input.lists} "
            "--min-pixels {params.min_pixels} --max-pixels {params.max_pixels} > {log} 2>&1"

else:

    localrules: base_model

    rule base_model:
        output:
            model_manifest("base"),
        params:
            repo=BASE["repo"],
            revision=BASE["revision"],
            mirror=f"--mirror {config['hub']['mirror']}" if config["hub"]["mirror"] else "",
        log:
            log_file("base_model"),
        shell:
            "tinyrs model fetch --repo {params.repo} --revision {params.revision} {params.mirror} "
            "--out {WORK}/models/base > {log} 2>&1"
