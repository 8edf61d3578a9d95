"""SLURM requests of the GPU jobs, read from the config's ``resources`` (config.yaml, and a site's overlay
profiles/<site>/site.yaml) and checked before anything is submitted.

A site describes its node types and partitions once; each job (a training stage, GRPO, eval) names a
partition and asks for nodes, and per node for GPUs, CPUs and memory, plus minutes. A request a partition can
never satisfy (more nodes than it allows, more GPUs per node than its node type has) would sit PENDING forever
in SLURM (REFERENCE.md §6); here it is a ConfigError naming the job and the limit when the workflow starts.
``live_problems`` checks the same requests against the nodes ``sinfo`` reports
(``tinyrs cluster check-resources --live``).
"""
from __future__ import annotations

import math
import re
import subprocess
from dataclasses import dataclass

import yaml

from tinyrs.config import SCHEMA_PATH, ConfigError

# Every Snakemake resource a job can get from snakemake_resources(); the workflow declares each of them
# (a value of None drops the resource for that job). The account is not one of them: every job, GPU or CPU, takes
# it from the site profile's default-resources ``slurm_account``, its one place (docs/cluster.md).
RESOURCE_KEYS = ("slurm_partition", "nodes", "tasks", "tasks_per_gpu", "mpi", "gres", "cpus_per_task", "mem_mb",
                 "runtime")


@dataclass(frozen=True)
class JobRequest:
    """What one job asks for: ``nodes`` nodes of ``partition``, and on each node these GPUs, CPUs, memory."""

    name: str
    image: str
    partition: str
    nodes: int
    gpus_per_node: int
    gpu_model: str | None
    cpus_per_node: int
    mem_mb: int
    runtime_min: int


def resources_schema() -> dict:
    """The ``resources`` property of tinyrs/schema/config.schema.yaml (with the definitions it refers to)."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    return {**schema["properties"]["resources"], "$defs": schema["$defs"]}


def _schema_problems(resources: dict) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(resources_schema())
    problems = []
    for error in sorted(validator.iter_errors(resources), key=lambda e: list(map(str, e.absolute_path))):
        dotted = ".".join(["resources", *map(str, error.absolute_path)])
        problems.append(f"{dotted}: {error.message}")
    return problems


def _limit_problems(resources: dict, job: dict, where: str) -> list[str]:
    """Requests of ``job`` (config key ``where``) that its partition can never satisfy."""
    partition_name = job["partition"]
    partition = resources["partitions"].get(partition_name)
    if partition is None:
        return [f"{where}.partition: '{partition_name}' is not a key of resources.partitions"]
    node_type = partition["node_type"]
    node = resources["node_types"].get(node_type)
    if node is None:
        return [f"resources.partitions.{partition_name}.node_type: '{node_type}' is not a key of resources.node_types"]
    problems = []
    if job["nodes"] > partition["max_nodes"]:
        problems.append(f"{where}: asks for {job['nodes']} nodes but partition '{partition_name}' allows at most "
                        f"{partition['max_nodes']}")
    per_node = (("gpus_per_node", "gpus", "GPUs"), ("cpus_per_node", "cpus", "CPUs"), ("mem_mb", "mem_mb", "MB of memory"))
    for asked_key, node_key, what in per_node:
        if job[asked_key] > node[node_key]:
            problems.append(f"{where}: asks for {job[asked_key]} {what} per node but a '{node_type}' node of "
                            f"partition '{partition_name}' has {node[node_key]}")
    if job["gpus_per_node"] > 0 and not node["gpu_model"]:
        problems.append(f"{where}: asks for GPUs but node type '{node_type}' names no gpu_model")
    if job["runtime_min"] > partition["max_runtime_min"]:
        problems.append(f"{where}: asks for {job['runtime_min']} minutes but partition '{partition_name}' allows at "
                        f"most {partition['max_runtime_min']}")
    return problems


def resource_problems(resources: dict | None) -> list[str]:
    """Every problem of the ``resources`` section: its shape, then each job against its partition."""
    if resources is None:
        return ["the configuration has no 'resources' section (see config.yaml and docs/cluster.md)"]
    problems = _schema_problems(resources)
    if problems:
        return problems
    for partition_name, partition in resources["partitions"].items():
        if partition["node_type"] not in resources["node_types"]:
            problems.append(f"resources.partitions.{partition_name}.node_type: '{partition['node_type']}' is not a "
                            "key of resources.node_types")
    for section in ("kinds", "jobs"):
        for name, job in resources.get(section, {}).items():
            problems.extend(_limit_problems(resources, job, f"resources.{section}.{name}"))
    return list(dict.fromkeys(problems))  # a bad partition is named once, not once per job using it


def validate_resources(resources: dict | None) -> None:
    problems = resource_problems(resources)
    if problems:
        raise ConfigError("impossible or invalid SLURM requests:\n  " + "\n  ".join(problems))


def job_request(resources: dict, name: str) -> JobRequest:
    """The checked request of job ``name`` (a key of resources.jobs)."""
    if name not in resources["jobs"]:
        raise ConfigError(f"resources.jobs has no entry '{name}' (known: {', '.join(sorted(resources['jobs']))})")
    problems = _limit_problems(resources, resources["jobs"][name], f"resources.jobs.{name}")
    if problems:
        raise ConfigError("impossible SLURM request:\n  " + "\n  ".join(problems))
    job = resources["jobs"][name]
    node = resources["node_types"][resources["partitions"][job["partition"]]["node_type"]]
    return JobRequest(name=name, image=job["image"], partition=job["partition"], nodes=job["nodes"],
                      gpus_per_node=job["gpus_per_node"], gpu_model=node["gpu_model"],
                      cpus_per_node=job["cpus_per_node"], mem_mb=job["mem_mb"], runtime_min=job["runtime_min"])


def snakemake_resources(resources: dict, name: str, attempt: int = 1) -> dict:
    """The Snakemake resources that make the SLURM executor plugin submit job ``name`` as requested.

    Runtime and memory grow by ``retry_growth`` with each resubmission (profile ``retries``), capped at what
    the partition and node allow. GPUs go through ``gres`` (per node, unlike ``gpu=`` which counts the whole
    job) with ``tasks_per_gpu=0``, so the plugin adds no ``--ntasks-per-gpu``. A multi-node job is an ``mpi``
    job with one task per node: the plugin then runs the rule's shell directly in the allocation, whose
    ``srun`` reaches every node (docs/cluster.md).
    """
    request = job_request(resources, name)
    partition = resources["partitions"][request.partition]
    node = resources["node_types"][partition["node_type"]]
    growth = resources["retry_growth"] ** (max(attempt, 1) - 1)
    result = {
        "slurm_partition": request.partition,
        "nodes": request.nodes,
        "cpus_per_task": request.cpus_per_node,
        "mem_mb": min(math.ceil(request.mem_mb * growth), node["mem_mb"]),
        "runtime": min(math.ceil(request.runtime_min * growth), partition["max_runtime_min"]),
        "gres": f"gpu:{request.gpu_model}:{request.gpus_per_node}" if request.gpus_per_node else None,
        "tasks_per_gpu": 0 if request.gpus_per_node else None,
        "mpi": "srun" if request.nodes > 1 else None,
        "tasks": request.nodes if request.nodes > 1 else None,
    }
    return {key: value for key, value in result.items() if value is not None}


@dataclass(frozen=True)
class LiveNode:
    """One node of one partition as ``sinfo`` reports it."""

    name: str
    partition: str
    state: str
    cpus: int
    mem_mb: int
    gpus: dict[str | None, int]       # GPU model (None: untyped) -> count
    max_runtime_min: int | None       # the partition's time limit; None: infinite


_UNUSABLE_STATES = ("down", "drain", "drng", "fail", "inval", "unk")
SINFO_FORMAT = "%N|%P|%t|%c|%m|%G|%l"


def parse_slurm_minutes(text: str) -> int | None:
    """A SLURM time limit (``infinite``, ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) in minutes."""
    text = text.strip()
    if text in ("infinite", "UNLIMITED"):
        return None
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if days:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return (int(days or 0) * 24 + hours) * 60 + minutes + math.ceil(seconds / 60)


def parse_sinfo(text: str) -> list[LiveNode]:
    """Rows of ``sinfo -h -N -o SINFO_FORMAT``."""
    nodes = []
    for line in text.splitlines():
        if not line.strip():
            continue
        name, partition, state, cpus, mem, gres, limit = line.split("|")
        gpus: dict[str | None, int] = {}
        for model, count in re.findall(r"(?:^|,)gpu(?::([^:,(]+))?:(\d+)", gres):
            gpus[model or None] = gpus.get(model or None, 0) + int(count)
        nodes.append(LiveNode(name=name, partition=partition.rstrip("*"), state=state, cpus=int(cpus),
                              mem_mb=int(mem.rstrip("+")), gpus=gpus, max_runtime_min=parse_slurm_minutes(limit)))
    return nodes


def sinfo_nodes() -> list[LiveNode]:
    result = subprocess.run(["sinfo", "-h", "-N", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ConfigError(f"sinfo failed ({result.returncode}): {result.stderr.strip()}")
    return parse_sinfo(result.stdout)


def _fits(node: LiveNode, request: JobRequest) -> bool:
    model = (request.gpu_model or "").lower()
    gpus = sum(count for name, count in node.gpus.items() if name is None or name.lower() == model)
    return (node.cpus >= request.cpus_per_node and node.mem_mb >= request.mem_mb
            and (request.gpus_per_node == 0 or gpus >= request.gpus_per_node)
            and not node.state.lower().startswith(_UNUSABLE_STATES))


def live_problems(resources: dict, nodes: list[LiveNode]) -> list[str]:
    """Jobs the cluster as it is cannot run: too few usable nodes that can each host one of its tasks."""
    problems = []
    for name in resources["jobs"]:
        request = job_request(resources, name)
        members = [node for node in nodes if node.partition == request.partition]
        where = f"resources.jobs.{name}"
        if not members:
            problems.append(f"{where}: sinfo shows no partition '{request.partition}'")
            continue
        fitting = [node for node in members if _fits(node, request)]
        if len(fitting) < request.nodes:
            gpus = f"{request.gpus_per_node} x {request.gpu_model} GPUs, " if request.gpus_per_node else ""
            problems.append(f"{where}: needs {request.nodes} usable node(s) with {gpus}{request.cpus_per_node} CPUs "
                            f"and {request.mem_mb} MB in partition '{request.partition}'; sinfo shows "
                            f"{len(fitting)} such node(s) of {len(members)}")
        limit = members[0].max_runtime_min
        if limit is not None and request.runtime_min > limit:
            problems.append(f"{where}: asks for {request.runtime_min} minutes but partition '{request.partition}' "
                            f"has a time limit of {limit}")
    return problems
