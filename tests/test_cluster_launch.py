"""The GPU launcher: command lines for one node (plain, torchrun) and for several (srun on the first node,
then apptainer + torchrun on every node, from what SLURM sets inside srun)."""
from __future__ import annotations

import argparse
import os
import sys

import pytest

from tinyrs.cli import cluster as cli
from tinyrs.cluster.launch import (LaunchError, LaunchPlan, add_arguments, main, node_command, outer_command,
                                   plan_arguments, rendezvous_port, slurm_step)

COMMAND = ["tinyrs", "grpo", "--settings", "work/settings/grpo.json"]
PLAN = LaunchPlan(nodes=2, gpus_per_node=8, cpus_per_node=64, image="/images/grpo.sif",
                  apptainer_args="--nv --bind /scratch")


def set_slurm_environment(monkeypatch, environ: dict) -> None:
    """Make these the only SLURM variables of this process (a fake srun task, or no SLURM at all)."""
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def fake_slurm_step(monkeypatch, environ: dict):
    """slurm_step() as an srun task with exactly these SLURM variables would see it."""
    set_slurm_environment(monkeypatch, environ)
    return slurm_step()


def test_one_node_one_gpu_runs_the_command_as_it_is():
    assert outer_command(LaunchPlan(gpus_per_node=1), COMMAND) == COMMAND


def test_one_node_several_gpus_runs_torchrun_standalone():
    assert outer_command(LaunchPlan(gpus_per_node=4), COMMAND) == [
        "torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", "4", "--no-python", *COMMAND]


def test_several_nodes_start_one_launcher_per_node_with_srun():
    argv = outer_command(PLAN, COMMAND, python="/venv/bin/python")
    assert argv[:11] == ["srun", "--nodes", "2", "--ntasks-per-node", "1", "--cpus-per-task", "64",
                         "--kill-on-bad-exit=1", "--gpus-per-node", "8", "/venv/bin/python"]
    assert argv[11:14] == ["-m", "tinyrs.cluster.launch", "--on-node"]
    assert argv[-len(COMMAND) - 1:] == ["--", *COMMAND]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(argv[13:])  # what the per-node launcher parses back
    assert (args.nodes, args.gpus_per_node, args.cpus_per_node, args.image, args.apptainer_args, args.port) == \
        (2, 8, 64, "/images/grpo.sif", "--nv --bind /scratch", None)
    assert args.on_node and args.command[1:] == COMMAND


def test_multi_node_needs_an_image():
    with pytest.raises(LaunchError, match="needs --image"):
        outer_command(LaunchPlan(nodes=2, gpus_per_node=8), COMMAND)


@pytest.mark.parametrize("node_id, is_host", [("0", "true"), ("1", "false")])
def test_each_node_runs_torchrun_in_the_image_meeting_on_the_first_node(monkeypatch, node_id, is_host):
    step = fake_slurm_step(monkeypatch, {"SLURM_JOB_ID": "4242", "SLURM_NODEID": node_id,
                                         "SLURM_JOB_NODELIST": "gpu-a[07-08]", "SLURM_PROCID": node_id})
    assert step.hostnames == ("gpu-a07", "gpu-a08") and step.node_rank == int(node_id)
    port = rendezvous_port(PLAN, "4242")
    assert 20000 <= port < 60000
    assert node_command(PLAN, COMMAND, step) == [
        "apptainer", "exec", "--nv", "--bind", "/scratch", "/images/grpo.sif",
        "torchrun", "--nnodes", "2", "--nproc-per-node", "8", "--rdzv-backend", "c10d",
        "--rdzv-endpoint", f"gpu-a07:{port}", "--rdzv-id", "4242", "--rdzv-conf", f"is_host={is_host}",
        "--no-python", *COMMAND]


def test_the_port_is_the_configured_one_or_the_same_for_every_node_of_a_job():
    assert rendezvous_port(LaunchPlan(port=29500), "1") == 29500
    assert rendezvous_port(PLAN, "4242") == rendezvous_port(PLAN, "4242") != rendezvous_port(PLAN, "4243")


def test_gpu_nodes_always_get_nv(monkeypatch):
    step = fake_slurm_step(monkeypatch, {"SLURM_JOB_ID": "7", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "n[1-2]"})
    argv = node_command(LaunchPlan(nodes=2, gpus_per_node=1, image="/i.sif", apptainer_args="--bind /data"),
                        ["true"], step)
    assert argv[:6] == ["apptainer", "exec", "--nv", "--bind", "/data", "/i.sif"]


def test_a_step_on_other_nodes_than_planned_is_refused(monkeypatch):
    step = fake_slurm_step(monkeypatch, {"SLURM_JOB_ID": "7", "SLURM_NODEID": "0", "SLURM_JOB_NODELIST": "n[1-3]"})
    with pytest.raises(LaunchError, match=r"srun placed this job step on 3 node\(s\) \(n1, n2, n3\) but the launch "
                                          "asks for 2"):
        node_command(PLAN, COMMAND, step)


def test_outside_srun_the_node_step_says_why(monkeypatch, capsys):
    set_slurm_environment(monkeypatch, {})
    assert main(["--on-node", "--nodes", "2", "--image", "/i.sif", "--", "true"]) == 2
    assert "--on-node runs inside srun, but SLURM_JOB_ID, SLURM_NODEID, SLURM_JOB_NODELIST is not set" in \
        capsys.readouterr().err


def test_multi_node_without_an_allocation_says_how_to_get_one(monkeypatch, capsys):
    set_slurm_environment(monkeypatch, {})
    assert main(["--nodes", "2", "--image", "/i.sif", "--", "true"]) == 2
    assert "needs a SLURM allocation (SLURM_JOB_ID is not set)" in capsys.readouterr().err


def test_tinyrs_launch_subcommand_dry_run(capsys):
    parser = argparse.ArgumentParser(prog="tinyrs")
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["launch", "--dry-run", *plan_arguments(PLAN), "--", *COMMAND])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("srun --nodes 2 ") and f"{sys.executable} -m tinyrs.cluster.launch --on-node" in printed
