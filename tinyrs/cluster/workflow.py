"""What the Snakefile asks of the cluster package, per job: its Snakemake resources (SLURM requests plus the
``launch`` prefix of its shell command) and its container. ``RuleJobs`` hands these to the rules as callables.

``containers`` says whether the workflow runs its containers (``--software-deployment-method apptainer``, as
profiles/slurm does). Without them (the demo and local profiles) every stage runs as one plain process:
no image, no torchrun, no srun. With them:

- a single-node job runs in Snakemake's ``container:`` (its image), under ``torchrun --standalone`` when it
  has more than one GPU;
- a multi-node job has no ``container:`` and its shell starts with ``srun ... tinyrs launch``, which runs
  Apptainer on each node itself (launch.py).

``launch`` is a resource rather than a param on purpose: changing nodes or GPUs must not rerun a trained stage.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from tinyrs.cluster.images import image_path
from tinyrs.cluster.launch import LaunchPlan, outer_command
from tinyrs.cluster.resources import RESOURCE_KEYS, job_request, snakemake_resources, validate_resources
from tinyrs.config import stage_resources


def _image(config: dict, name: str, lock_path: Path) -> str:
    return str(image_path(name, config["resources"]["images"][name], lock_path))


def launch_prefix(config: dict, job: str, containers: bool, apptainer_args: str, lock_path: Path) -> str:
    """The words the rule's shell puts before its ``tinyrs`` command to start it on the job's GPUs."""
    if not containers:
        return ""
    request = job_request(config["resources"], job)
    plan = LaunchPlan(nodes=request.nodes, gpus_per_node=request.gpus_per_node,
                      cpus_per_node=request.cpus_per_node,
                      image=_image(config, request.image, lock_path) if request.nodes > 1 else None,
                      apptainer_args=apptainer_args or "--nv", port=config["resources"]["rendezvous_port"])
    return shlex.join(outer_command(plan, []))


def job_resources(config: dict, job: str, attempt: int, containers: bool, apptainer_args: str,
                  lock_path: Path) -> dict:
    """Snakemake resources of ``job`` on attempt ``attempt``: the SLURM requests and the ``launch`` prefix."""
    resources = snakemake_resources(config["resources"], job, attempt)
    resources["launch"] = launch_prefix(config, job, containers, apptainer_args, lock_path)
    return resources


def job_container(config: dict, job: str, containers: bool, lock_path: Path) -> str | None:
    """The image Snakemake runs a single-node job in; None without containers or for a multi-node job."""
    if not containers:
        return None
    request = job_request(config["resources"], job)
    return _image(config, request.image, lock_path) if request.nodes == 1 else None


def validate(config: dict) -> None:
    """Refuse impossible requests when the workflow starts, before anything is submitted."""
    validate_resources(config.get("resources"))


class RuleJobs:
    """The cluster side of the workflow's rules, from config.yaml ``resources`` (docs/cluster.md): a site edits
    config, never the rules. ``job`` is a key of ``resources.jobs``, or a stage, whose job is its kind's
    ``resources.kinds`` entry unless ``resources.jobs`` has its own. Impossible requests fail here, before
    anything is submitted.

    ``containers``: the workflow runs its containers (``--sdm apptainer``, as profiles/slurm does); without them
    (demo, local) ``{resources.launch}`` is empty and no job has an image.
    """

    def __init__(self, config: dict, containers: bool, apptainer_args: str, lock_path: Path):
        validate(config)
        config = {**config, "resources": stage_resources(config)}
        self.config, self.containers, self.apptainer_args, self.lock_path = config, containers, apptainer_args, lock_path

    def resources(self, job: str) -> dict:
        """The rule's ``resources:``: SLURM requests (runtime and memory grow with ``attempt``) and ``launch``."""

        def resource(key):
            return lambda wildcards, attempt: job_resources(
                self.config, job, attempt, self.containers, self.apptainer_args, self.lock_path).get(key)

        return {key: resource(key) for key in (*RESOURCE_KEYS, "launch")}

    def container(self, job: str):
        """The rule's ``container:``: the job's image (None without containers, or for a multi-node job)."""
        return lambda wildcards: job_container(self.config, job, self.containers, self.lock_path)

    @staticmethod
    def host():
        """The ``container:`` of a rule that runs in the workflow's own environment (``make install``: the one
        Snakemake runs in, on the submit host or a CPU node), with or without containers: no image. Data
        preparation, downloads and the report are such rules; saying so keeps every rule's software stated
        (``snakemake --lint`` asks each rule for a container or a conda environment)."""
        return lambda wildcards: None
