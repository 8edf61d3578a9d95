"""A real SLURM cluster on this host (tests/slurm/cluster.sh: munge, MariaDB + slurmdbd, slurmctld and two fake
nodes n1, n2 with one fake GPU each): jobs run and accounting sees them, the multi-node GPU launch path
all-reduces across both nodes, and the SLURM profile submits a toy workflow. `apptainer` is the test double in
tests/slurm/bin (no Apptainer runtime can be installed here). Every cluster command runs under `timeout -k`.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tinyrs.cluster.launch import LaunchPlan, outer_command
from tinyrs.cluster.resources import live_problems, sinfo_nodes

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parent.parent
SLURM_DIR = REPO / "tests" / "slurm"
STATE = Path(os.environ.get("TINYRS_SLURM_DIR", "/tmp/tinyrs-slurm"))
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "PREEMPTED")


def run(argv: list, timeout: int, env: dict | None = None, cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """``argv`` under ``timeout -k``; on failure (``check``) the test fails with its output."""
    result = subprocess.run(["timeout", "-k", "10", str(timeout), *map(str, argv)], capture_output=True, text=True,
                            env=env, cwd=cwd)
    if check and result.returncode != 0:
        pytest.fail(f"{shlex.join(map(str, argv))} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def slurm_env():
    """Environment of a client of the two-node test cluster, started here unless it already runs (then it is
    left running at the end, as found)."""
    env = {**os.environ, "SLURM_CONF": str(STATE / "etc" / "slurm.conf"),
           "PATH": os.pathsep.join([str(SLURM_DIR / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])}
    status = run(["bash", SLURM_DIR / "cluster.sh", "status"], 60, check=False)
    mode = (STATE / "mode").read_text().strip() if (STATE / "mode").exists() else None
    already_running = status.returncode == 0 and mode == "2"
    if not already_running:
        started = run(["bash", SLURM_DIR / "cluster.sh", "start", "2"], 600, check=False)
        if started.returncode == 3:
            pytest.skip(f"no SLURM on this machine and it cannot be installed: {started.stderr.strip()}")
        if started.returncode != 0:
            pytest.fail(f"tests/slurm/cluster.sh start 2 failed ({started.returncode}):\n{started.stderr}\n"
                        f"logs: {STATE / 'log'}")
    yield env
    if not already_running:
        run(["bash", SLURM_DIR / "cluster.sh", "stop"], 120, check=False)


def wait_for(job_id: str, env: dict, timeout: float = 120) -> str:
    """The final state of a job, as accounting reports it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State"], 30, env).stdout.strip()
        if state.startswith(TERMINAL):
            return state
        time.sleep(1)
    run(["scancel", job_id], 30, env, check=False)
    pytest.fail(f"job {job_id} did not finish within {timeout} s")


def sacct_rows(env: dict, fields: str, *args: str) -> list[dict]:
    out = run(["sacct", "-n", "-P", "-o", fields, *args], 30, env).stdout
    names = fields.split(",")
    return [dict(zip(names, line.split("|"))) for line in out.splitlines() if line]


def last_job_id(env: dict) -> int:
    ids = [int(row["JobID"]) for row in sacct_rows(env, "JobID", "-X", "-a") if row["JobID"].isdigit()]
    return max(ids, default=0)


def test_a_batch_job_and_its_step_show_in_sacct(slurm_env, tmp_path):
    job_id = run(["sbatch", "--parsable", "-A", "tinyrs", "-p", "debug", "-t", "2", "-o", tmp_path / "job.out",
                  "--wrap", "srun hostname"], 60, slurm_env, cwd=tmp_path).stdout.strip()
    assert wait_for(job_id, slurm_env) == "COMPLETED"
    rows = {row["JobID"]: row for row in sacct_rows(slurm_env, "JobID,Account,State", "-j", job_id)}
    assert rows[job_id] == {"JobID": job_id, "Account": "tinyrs", "State": "COMPLETED"}
    assert rows[f"{job_id}.batch"]["State"] == rows[f"{job_id}.0"]["State"] == "COMPLETED"


def test_two_node_allreduce_through_the_gpu_launch_path(slurm_env, tmp_path):
    """The command a multi-node rule's shell runs (outer_command, as in RuleJobs.resources' launch prefix):
    srun -> per-node launcher -> apptainer exec --nv IMAGE -> torchrun -> a gloo all-reduce over n1 and n2."""
    image = tmp_path / "grpo.sif"
    image.write_bytes(b"stand-in image")
    result = tmp_path / "allreduce.json"
    plan = LaunchPlan(nodes=2, gpus_per_node=1, cpus_per_node=1, image=str(image), apptainer_args="--nv")
    command = shlex.join(outer_command(plan, ["python", str(SLURM_DIR / "allreduce.py"), str(result)]))
    env = {**slurm_env, "APPTAINER_DOUBLE_LOG": str(tmp_path / "apptainer.log")}
    job_id = run(["sbatch", "--parsable", "-A", "tinyrs", "-p", "debug", "-t", "3", "--nodes", "2", "--ntasks", "2",
                  "--cpus-per-task", "1", "--gres", "gpu:h100:1", "--mem", "1000", "-o", tmp_path / "job.out",
                  "--wrap", command], 60, env, cwd=tmp_path).stdout.strip()
    state = wait_for(job_id, env, timeout=150)
    assert state == "COMPLETED", (tmp_path / "job.out").read_text()

    outcome = json.loads(result.read_text())
    assert outcome["world_size"] == 2 and outcome["sum"] == 3.0  # 1 + 2: both ranks took part
    ranks = outcome["ranks"]
    assert sorted((r["slurm_node"], r["node_rank"]) for r in ranks) == [("n1", "0"), ("n2", "1")]  # one per node
    assert {r["image"] for r in ranks} == {str(image)} and {r["cuda_visible_devices"] for r in ranks} == {"0"}
    calls = [json.loads(line) for line in (tmp_path / "apptainer.log").read_text().splitlines()]
    assert sorted(call[call.index("--rdzv-conf") + 1] for call in calls) == ["is_host=false", "is_host=true"]
    for call in calls:
        assert call[:3] == ["exec", "--nv", str(image)] and call[3] == "torchrun"
        assert call[call.index("--rdzv-endpoint") + 1].startswith("n1:")
        assert call[call.index("--rdzv-id") + 1] == job_id


def test_live_resource_check_sees_the_two_nodes(slurm_env, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_env["SLURM_CONF"])
    resources = yaml.safe_load((SLURM_DIR / "config.yaml").read_text())["resources"]
    nodes = sinfo_nodes()
    assert {node.name for node in nodes} == {"n1", "n2"} and nodes[0].gpus == {"h100": 1}
    assert live_problems(resources, nodes) == []
    resources["partitions"]["debug"]["max_nodes"] = 3  # the config allows it, the cluster cannot
    resources["jobs"]["toy_multi"]["nodes"] = 3
    assert live_problems(resources, nodes) == [
        "resources.jobs.toy_multi: needs 3 usable node(s) with 1 x h100 GPUs, 1 CPUs and 1000 MB in partition "
        "'debug'; sinfo shows 2 such node(s) of 2"]


@pytest.mark.slow
def test_the_slurm_profile_submits_each_rule(slurm_env, tmp_path):
    """tests/slurm/Snakefile through `--profile profiles/slurm --profile profiles/slurm-test`."""
    (tmp_path / "toy.sif").write_bytes(b"stand-in image")
    env = {**slurm_env, "APPTAINER_DOUBLE_LOG": str(tmp_path / "apptainer.log")}
    before = last_job_id(env)
    result = run(["snakemake", "-s", SLURM_DIR / "Snakefile", "--directory", tmp_path, "--profile", "profiles/slurm",
                  "--profile", "profiles/slurm-test"], 300, env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["allreduce"]["sum"] == 3.0 and summary["allreduce"]["world_size"] == 2
    assert summary["image"] == str(tmp_path / "toy.sif") and summary["cuda_visible_devices"] == "0"
    jobs = [row for row in sacct_rows(env, "JobID,Comment,State,Timelimit,NNodes,Account", "-X", "-a")
            if row["JobID"].isdigit() and int(row["JobID"]) > before]
    by_rule = {}
    for row in jobs:
        by_rule.setdefault(row["Comment"], []).append((row["State"], row["Timelimit"], row["NNodes"], row["Account"]))
    assert by_rule == {
        "rule_allreduce": [("COMPLETED", "00:05:00", "2", "tinyrs")],
        # the first attempt fails on purpose; the resubmission asks for 1.5 x the time (retry_growth)
        "rule_summary": [("FAILED", "00:04:00", "1", "tinyrs"), ("COMPLETED", "00:06:00", "1", "tinyrs")],
    }


@pytest.mark.slow
def test_the_demo_pipeline_through_slurm(slurm_env, tmp_path):
    """The whole demo pipeline through the SLURM profile on the test cluster (containers: the Apptainer test
    double; GRPO on both nodes through srun + torchrun). Needs every stage of the pipeline."""
    image = tmp_path / "stand-in.sif"
    image.write_bytes(b"stand-in image")
    overlay = yaml.safe_load((SLURM_DIR / "pipeline.yaml").read_text())
    overlay["workdir"] = str(tmp_path / "work")
    overlay["resources"]["images"] = {name: str(image) for name in overlay["resources"]["images"]}
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(overlay))
    before = last_job_id(slurm_env)
    result = run(["snakemake", "--profile", "profiles/slurm", "--profile", "profiles/slurm-test", "--configfile",
                  "config.yaml", "profiles/demo/overrides.yaml", tmp_path / "pipeline.yaml", "--jobs", "2"],
                 1800, slurm_env, cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-4000:]
    assert (tmp_path / "work" / "report" / "results.md").exists()
    completed = {row["Comment"] for row in sacct_rows(slurm_env, "JobID,Comment,State", "-X", "-a")
                 if row["JobID"].isdigit() and int(row["JobID"]) > before and row["State"] == "COMPLETED"}
    for rule in ("demo_world", "correct_list", "oversample_list", "base_model", "pretrain", "sft", "cot", "grpo",  # fetch_dataset is a localrule
                 "eval_stage", "reward_check", "report"):
        assert any(comment.startswith(f"rule_{rule}") for comment in completed), (rule, sorted(completed))
