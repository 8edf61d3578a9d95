"""SLURM requests from the config's `resources`: impossible requests are refused before submission, and the
Snakemake resources, container and launch prefix of each job are what the SLURM plugin and the GPUs need."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tinyrs.cluster import workflow
from tinyrs.cluster.resources import (job_request, live_problems, parse_sinfo, parse_slurm_minutes, resource_problems,
                                      snakemake_resources, validate_resources)
from tinyrs.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config():
    return load_config([REPO / "config.yaml"])


@pytest.fixture()
def resources(config):
    return copy.deepcopy(config["resources"])


def test_the_recipe_requests_fit(resources):
    assert resource_problems(resources) == []
    assert job_request(resources, "grpo").nodes == 2


@pytest.mark.parametrize("job, key, value, message", [
    ("grpo", "nodes", 8, "resources.jobs.grpo: asks for 8 nodes but partition 'gpu' allows at most 4"),
    ("sft", "gpus_per_node", 16, "resources.jobs.sft: asks for 16 GPUs per node but a 'h100x8' node of partition "
                                 "'gpu' has 8"),
    ("eval", "cpus_per_node", 200, "asks for 200 CPUs per node but a 'h100x8' node"),
    ("eval", "mem_mb", 2_000_000, "asks for 2000000 MB of memory per node"),
    ("cot", "runtime_min", 10_000, "asks for 10000 minutes but partition 'gpu' allows at most 2880"),
    ("cot", "partition", "gpus", "resources.jobs.cot.partition: 'gpus' is not a key of resources.partitions"),
])
def test_impossible_requests_are_refused(resources, job, key, value, message):
    resources["jobs"][job][key] = value
    with pytest.raises(ConfigError) as err:
        validate_resources(resources)
    assert message in str(err.value)
    with pytest.raises(ConfigError, match="impossible SLURM request"):
        snakemake_resources(resources, job)


def test_schema_problems_name_the_key(resources):
    resources["jobs"]["sft"]["gpus"] = 4
    resources["node_types"]["h100x8"]["gpus"] = -1
    problems = "\n".join(resource_problems(resources))
    assert "resources.jobs.sft: Additional properties are not allowed ('gpus' was unexpected)" in problems
    assert "resources.node_types.h100x8.gpus: -1 is less than the minimum of 0" in problems
    assert resource_problems(None) == ["the configuration has no 'resources' section (see config.yaml and "
                                       "docs/cluster.md)"]


def test_a_missing_job_is_named(resources):
    with pytest.raises(ConfigError, match="resources.jobs has no entry 'judge'"):
        job_request(resources, "judge")


def test_single_node_gpu_job(resources):
    assert snakemake_resources(resources, "sft") == {
        "slurm_partition": "gpu", "nodes": 1, "cpus_per_task": 32, "mem_mb": 480000, "runtime": 1440,
        "gres": "gpu:h100:4", "tasks_per_gpu": 0}


def test_multi_node_job_is_one_mpi_task_per_node(resources):
    result = snakemake_resources(resources, "grpo")
    assert result["mpi"] == "srun" and result["tasks"] == 2 and result["nodes"] == 2
    assert result["gres"] == "gpu:h100:8" and result["tasks_per_gpu"] == 0
    assert "slurm_account" not in result  # every job's account: the site profile's default-resources


def test_runtime_and_memory_grow_per_attempt_up_to_the_limits(resources):
    runtimes = [snakemake_resources(resources, "eval", attempt)["runtime"] for attempt in (1, 2, 3, 9)]
    memory = [snakemake_resources(resources, "eval", attempt)["mem_mb"] for attempt in (1, 2, 3, 9)]
    assert runtimes == [240, 360, 540, 2880]  # x1.5 per attempt, capped at the partition's 2880 minutes
    assert memory == [64000, 96000, 144000, 1000000]  # capped at the node's memory


def test_cpu_only_job_has_no_gpu_keys(resources):
    resources["node_types"]["cpu64"] = {"gpu_model": None, "gpus": 0, "cpus": 64, "mem_mb": 256000}
    resources["partitions"]["cpu"] = {"node_type": "cpu64", "max_nodes": 1, "max_runtime_min": 600}
    resources["jobs"]["prep"] = {"image": "sft", "partition": "cpu", "nodes": 1, "gpus_per_node": 0,
                                 "cpus_per_node": 16, "mem_mb": 64000, "runtime_min": 60}
    assert set(snakemake_resources(resources, "prep")) == {"slurm_partition", "nodes", "cpus_per_task", "mem_mb",
                                                           "runtime"}
    resources["jobs"]["prep"]["gpus_per_node"] = 1
    assert any("asks for 1 GPUs per node but a 'cpu64' node" in p for p in resource_problems(resources))


def test_without_containers_a_job_runs_plainly(config, tmp_path):
    lock = tmp_path / "images.lock.json"  # absent: must not be needed
    assert workflow.job_container(config, "sft", False, lock) is None
    assert workflow.job_resources(config, "grpo", 1, False, "--nv", lock)["launch"] == ""


def test_with_containers_single_and_multi_node_jobs(config, tmp_path):
    for name in ("sft", "grpo"):
        (tmp_path / f"{name}.sif").write_bytes(b"image")
    config = copy.deepcopy(config)
    config["resources"]["images"].update(sft=str(tmp_path / "sft.sif"), grpo=str(tmp_path / "grpo.sif"))
    lock = tmp_path / "images.lock.json"
    assert workflow.job_container(config, "sft", True, lock) == str(tmp_path / "sft.sif")
    assert workflow.launch_prefix(config, "sft", True, "--nv", lock) == \
        "torchrun --standalone --nnodes 1 --nproc-per-node 4 --no-python"
    assert workflow.launch_prefix(config, "eval", True, "--nv", lock) == ""  # one GPU: no torchrun
    assert workflow.job_container(config, "grpo", True, lock) is None  # the launcher runs Apptainer per node
    prefix = workflow.launch_prefix(config, "grpo", True, "--nv --bind /scratch", lock)
    assert prefix.startswith("srun --nodes 2 --ntasks-per-node 1 --cpus-per-task 64 --kill-on-bad-exit=1 "
                             "--gpus-per-node 8 ")
    assert f"-m tinyrs.cluster.launch --on-node --nodes 2 --gpus-per-node 8 --cpus-per-node 64 " \
           f"'--apptainer-args=--nv --bind /scratch' --image {tmp_path / 'grpo.sif'} --" in prefix


SINFO = """\
g01|gpu*|idle|96|1000000|gpu:h100:8(S:0-1)|2-00:00:00
g02|gpu*|mix|96|1000000|gpu:h100:8(S:0-1)|2-00:00:00
g03|gpu*|drain|96|1000000|gpu:h100:8(S:0-1)|2-00:00:00
g04|gpu*|idle|96|1000000|gpu:h100:4,mps:400|2-00:00:00
c01|cpu|idle|64|256000|(null)|infinite
"""


def test_sinfo_rows_are_parsed():
    nodes = parse_sinfo(SINFO)
    assert [n.name for n in nodes] == ["g01", "g02", "g03", "g04", "c01"]
    assert nodes[0].partition == "gpu" and nodes[0].gpus == {"h100": 8} and nodes[0].max_runtime_min == 2880
    assert nodes[3].gpus == {"h100": 4} and nodes[4].gpus == {} and nodes[4].max_runtime_min is None
    assert [parse_slurm_minutes(t) for t in ("30", "90:30", "01:00:00", "1-12", "2-00:30:00", "infinite")] == \
        [30, 91, 60, 2160, 2910, None]  # MM:SS rounds up


def test_live_check_counts_usable_fitting_nodes(resources):
    nodes = parse_sinfo(SINFO)
    assert live_problems(resources, nodes) == []  # grpo: g01, g02 fit; g03 drains, g04 has 4 GPUs
    resources["jobs"]["grpo"]["nodes"] = 3
    assert live_problems(resources, nodes) == [
        "resources.jobs.grpo: needs 3 usable node(s) with 8 x h100 GPUs, 64 CPUs and 800000 MB in partition "
        "'gpu'; sinfo shows 2 such node(s) of 4"]
    resources["jobs"]["eval"]["partition"] = resources["jobs"]["grpo"]["partition"] = "gpu2"
    resources["partitions"]["gpu2"] = resources["partitions"]["gpu"]
    assert any("sinfo shows no partition 'gpu2'" in p for p in live_problems(resources, nodes))


def test_a_partition_with_an_unknown_node_type_is_named_once(resources):
    resources["partitions"]["gpu"]["node_type"] = "a100x4"
    assert resource_problems(resources) == [
        "resources.partitions.gpu.node_type: 'a100x4' is not a key of resources.node_types"]


def test_the_documented_site_overlay_fits_the_recipe(tmp_path):
    """docs/cluster.md's example site.yaml, over config.yaml: every job on the site's partition, and valid."""
    doc = (REPO / "docs" / "cluster.md").read_text()
    (tmp_path / "site.yaml").write_text(doc.split("# profiles/<site>/site.yaml\n", 1)[1].split("```", 1)[0])
    resources = load_config([REPO / "config.yaml", tmp_path / "site.yaml"])["resources"]
    assert resource_problems(resources) == []
    assert {snakemake_resources(resources, job)["slurm_partition"] for job in resources["jobs"]} == {"batch"}


def test_a_stage_without_its_own_job_gets_its_kinds(tmp_path):
    """A stage added to the table asks for resources.kinds.<its kind> unless resources.jobs names it."""
    from tinyrs.config import stage_resources

    overlay = tmp_path / "site.yaml"
    overlay.write_text("stages:\n  sft2: {kind: sft, init: sft, data: sft, system_prompt: default}\n"
                       "  grpo2: {kind: grpo, init: grpo, data: grpo}\n")
    config = load_config([REPO / "config.yaml", overlay])
    jobs = stage_resources(config)["jobs"]
    assert jobs["sft2"] == config["resources"]["kinds"]["sft"] and jobs["grpo2"] == config["resources"]["kinds"]["grpo"]
    assert jobs["pretrain"] == config["resources"]["jobs"]["pretrain"]   # its own entry wins
    rule_jobs = workflow.RuleJobs(config, False, "", tmp_path / "images.lock.json")
    assert rule_jobs.resources("grpo2")["nodes"](None, 1) == 2


def test_an_impossible_kind_default_is_refused(resources):
    resources["kinds"]["sft"]["gpus_per_node"] = 16
    assert any(problem.startswith("resources.kinds.sft: asks for 16 GPUs per node")
               for problem in resource_problems(resources))
