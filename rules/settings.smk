# Each stage's settings file, written by a job and never while the workflow is parsed: a dry run, or a second
# instance the lock refuses, changes no file a running job reads. The settings text is the job's parameter, so a
# config change reruns exactly the stages whose settings changed (Snakemake's params rerun trigger).

import re

from tinyrs.config import settings_text
from tinyrs.io import write_text_if_changed

localrules: stage_settings


rule stage_settings:
    output:
        settings_file("{name}"),
    wildcard_constraints:
        name="|".join(re.escape(name) for name in STAGE_SETTINGS),
    params:
        text=lambda wildcards: settings_text(STAGE_SETTINGS[wildcards.name]),
    run:
        write_text_if_changed(output[0], params.text)
