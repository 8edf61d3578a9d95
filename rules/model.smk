# The base model of base_model.family: base_model.repo from the Hub (or a mirror), or the tiny demo model built offline.

BASE = config["base_model"]

if BASE["source"] == "tiny":

    rule base_model:
        input:
            lists=expand(f"{WORK}/data/{{name}}/list.json", name=list(config["data"]["lists"])),
        output:
            model_manifest("base"),
        params:
            family=BASE["family"],
            max_pixels=config["train_defaults"]["max_pixels"],
            min_pixels=config["train_defaults"]["min_pixels"],
        log:
            log_file("base_model"),
        shell:
            "tinyrs model tiny --family {params.family} --out {WORK}/models/base --corpus {input.lists} "
            "--min-pixels {params.min_pixels} --max-pixels {params.max_pixels} > {log} 2>&1"

else:

    localrules: base_model

    rule base_model:
        output:
            model_manifest("base"),
        params:
            family=BASE["family"],
            repo=BASE["repo"],
            revision=BASE["revision"],
            mirror=f"--mirror {config['hub']['mirror']}" if config["hub"]["mirror"] else "",
        log:
            log_file("base_model"),
        shell:
            "tinyrs model fetch --repo {params.repo} --revision {params.revision} {params.mirror} "
            "--family {params.family} --out {WORK}/models/base > {log} 2>&1"


# Published checkpoints (eval.external_models named in eval.stages): fetched like the base model, from the Hub or
# the mirror (hub.mirror; the demo's own mirror), then evaluated like a stage. In the demo, each stands in as a
# copy of the tiny base model that the demo puts into its mirror under the published repo's name.

import re

from tinyrs.config import external_models
from tinyrs.model.fetch import mirror_dir

EXTERNAL = external_models(config)

if EXTERNAL:

    def _one_of(names):
        return "|".join(re.escape(name) for name in names)

    localrules: external_model

    rule external_model:
        input:
            lambda wc: [f"{mirror_dir(MIRROR, EXTERNAL[wc.name]['repo'])}/config.json"] if DEMO else [],
        output:
            model_manifest("{name}"),
        wildcard_constraints:
            name=_one_of(EXTERNAL),
        params:
            repo=lambda wc: EXTERNAL[wc.name]["repo"],
            revision=lambda wc: EXTERNAL[wc.name]["revision"],
            mirror=f"--mirror {MIRROR}" if MIRROR else "",
        log:
            log_file("external_model_{name}"),
        shell:
            "tinyrs model fetch --repo {params.repo} --revision {params.revision} {params.mirror} "
            "--stage {wildcards.name} --out {WORK}/models/{wildcards.name} > {log} 2>&1"

    if DEMO:
        STAND_INS = {mirror_dir(MIRROR, spec["repo"]).name: spec["repo"] for spec in EXTERNAL.values()}

        rule demo_published_model:
            input:
                model_manifest("base"),
            output:
                f"{MIRROR}/{{folder}}/config.json",
            wildcard_constraints:
                folder=_one_of(STAND_INS),
            params:
                repo=lambda wc: STAND_INS[wc.folder],
            log:
                log_file("demo_published_model_{folder}"),
            shell:
                "tinyrs model to-mirror --model {input} --repo {params.repo} --mirror {MIRROR} > {log} 2>&1"
