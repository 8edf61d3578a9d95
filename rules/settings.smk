# Each job's settings file, written by a job and never while the workflow is parsed: a dry run, or a second
# instance the lock refuses, changes no file a running job reads. The settings text is the job's parameter, so a
# config change reruns exactly the jobs whose settings changed (Snakemake's params rerun trigger).

from tinyrs.config import settings_text, write_settings_file

localrules: stage_settings


rule stage_settings:
    output:
        settings=paths.settings("{name}"),
    wildcard_constraints:
        name=one_of(pipeline.settings),
    params:
        text=lambda wildcards: settings_text(pipeline.settings[wildcards.name]),
    log:
        paths.log("settings_{name}"),
    run:
        write_settings_file(output.settings, params.text, log[0])
