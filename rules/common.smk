# Paths shared by the rule files: one function per kind of stage output.

from snakemake.settings.types import DeploymentMethod
from tinyrs.cluster import workflow as cluster


def model_manifest(stage):
    return f"{WORK}/models/{stage}/tinyrs_manifest.json"


def fetched(dataset):
    return f"{WORK}/hub/{dataset}/.complete"


def hub_dir(dataset):
    return f"{WORK}/hub/{dataset}"


def list_manifest(name):
    return f"{WORK}/data/{name}/manifest.parquet"


def settings_file(name):
    return f"{SETTINGS}/{name}.json"


def eval_metrics(stage, task):
    return f"{WORK}/eval/{stage}/{task}.metrics.json"


def report_outputs():
    return [f"{WORK}/report/results.md", f"{WORK}/report/results.csv", f"{WORK}/report/results.parquet"]


def log_file(name):
    return f"{WORK}/logs/{name}.log"


# Cluster side of a job, from config.yaml `resources` (docs/cluster.md): a site edits config, never the rules.
# `job` is a key of resources.jobs, or a function of the wildcards returning one. Impossible requests fail here,
# before anything is submitted. With --sdm apptainer (profiles/slurm) jobs run in their images and on their GPUs;
# without it (demo, local) `{resources.launch}` is empty and there is no container.

CONTAINERS = DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method
IMAGES_LOCK = f"{workflow.basedir}/containers/images.lock.json"
cluster.validate(config)


def _job_name(job, wildcards):
    return job(wildcards) if callable(job) else job


def job_resources(job):
    """Resources of the job: SLURM requests (runtime and memory grow with `attempt`) and the `launch` prefix."""

    def resource(key):
        return lambda wildcards, attempt: cluster.job_resources(
            config, _job_name(job, wildcards), attempt, CONTAINERS,
            workflow.deployment_settings.apptainer_args, IMAGES_LOCK,
        ).get(key)

    return {key: resource(key) for key in cluster.resource_keys(config)}


def job_container(job):
    """The job's image for Snakemake's container: directive (None: no container)."""
    return lambda wildcards: cluster.job_container(config, _job_name(job, wildcards), CONTAINERS, IMAGES_LOCK)
