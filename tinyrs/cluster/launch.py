"""Start a command on the GPUs of a job: as it is, with torchrun on one node, or with srun + Apptainer +
torchrun on several nodes (``tinyrs launch [options] -- CMD...``).

A multi-node rule cannot use Snakemake's ``container:`` (that would put srun inside the image, which fails on
a real cluster: REFERENCE.md §6), and its shell has lost SLURM's node list. So the rule's shell runs, on the
job's first node,

    srun --nodes N --ntasks-per-node 1 ... python -m tinyrs.cluster.launch --on-node ... -- CMD...

and each srun task (one per node), where SLURM has set the node list and node id again, execs

    apptainer exec --nv IMAGE torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d
        --rdzv-endpoint FIRST_NODE:PORT --rdzv-id JOBID --rdzv-conf is_host=... --no-python CMD...

The first node hosts the rendezvous store (``is_host``: no guessing from host names), and the port is the
configured one or one derived from the job id, the same on every node.
"""
from __future__ import annotations

import argparse
import os
import random
import shlex
import sys
from dataclasses import dataclass

PORT_RANGE = (20000, 60000)


class LaunchError(RuntimeError):
    """The launch cannot happen as asked (no SLURM allocation, a node list that does not match...)."""


@dataclass(frozen=True)
class LaunchPlan:
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_node: int = 1
    image: str | None = None          # multi-node: the Apptainer image every node runs the command in
    apptainer_args: str = "--nv"      # Snakemake's --apptainer-args (site binds live there too)
    port: int | None = None           # rendezvous port; None: derived from the job id


@dataclass(frozen=True)
class SlurmStep:
    """Where an srun task runs: the job, this node's rank in the step, and the step's node names in order."""

    job_id: str
    node_rank: int
    hostnames: tuple[str, ...]


def plan_arguments(plan: LaunchPlan) -> list[str]:
    """The options of ``tinyrs launch`` that reproduce ``plan``."""
    args = ["--nodes", str(plan.nodes), "--gpus-per-node", str(plan.gpus_per_node),
            "--cpus-per-node", str(plan.cpus_per_node), f"--apptainer-args={plan.apptainer_args}"]
    if plan.image is not None:
        args += ["--image", plan.image]
    if plan.port is not None:
        args += ["--port", str(plan.port)]
    return args


def outer_command(plan: LaunchPlan, command: list[str], python: str = sys.executable) -> list[str]:
    """What the rule's shell runs (inside Snakemake's container for a single-node job)."""
    if plan.nodes == 1:
        if plan.gpus_per_node > 1:
            return ["torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", str(plan.gpus_per_node),
                    "--no-python", *command]
        return list(command)
    if not plan.image:
        raise LaunchError("a multi-node launch needs --image: each node starts the command in that Apptainer image")
    srun = ["srun", "--nodes", str(plan.nodes), "--ntasks-per-node", "1", "--cpus-per-task", str(plan.cpus_per_node),
            "--kill-on-bad-exit=1"]
    if plan.gpus_per_node:
        srun += ["--gpus-per-node", str(plan.gpus_per_node)]
    return [*srun, python, "-m", "tinyrs.cluster.launch", "--on-node", *plan_arguments(plan), "--", *command]


def slurm_step() -> SlurmStep:
    """This srun task's job id, node rank and node names, read from SLURM's variables by submitit."""
    from submitit.slurm.slurm import SlurmJobEnvironment

    missing = [name for name in ("SLURM_JOB_ID", "SLURM_NODEID", "SLURM_JOB_NODELIST") if name not in os.environ]
    if missing:
        raise LaunchError(f"--on-node runs inside srun, but {', '.join(missing)} is not set")
    environment = SlurmJobEnvironment()
    return SlurmStep(job_id=environment.job_id, node_rank=environment.node, hostnames=tuple(environment.hostnames))


def rendezvous_port(plan: LaunchPlan, job_id: str) -> int:
    """The configured port, or one chosen by the job id (equal on every node, different between jobs)."""
    return plan.port if plan.port is not None else random.Random(job_id).randrange(*PORT_RANGE)


def node_command(plan: LaunchPlan, command: list[str], step: SlurmStep) -> list[str]:
    """What one srun task (one node) runs: torchrun in the image, meeting the other nodes on the first one."""
    if len(step.hostnames) != plan.nodes:
        raise LaunchError(f"srun placed this job step on {len(step.hostnames)} node(s) ({', '.join(step.hostnames)}) "
                          f"but the launch asks for {plan.nodes}")
    if not plan.image:
        raise LaunchError("a multi-node launch needs --image")
    apptainer_args = shlex.split(plan.apptainer_args)
    if plan.gpus_per_node and "--nv" not in apptainer_args:
        apptainer_args.insert(0, "--nv")
    endpoint = f"{step.hostnames[0]}:{rendezvous_port(plan, step.job_id)}"
    return ["apptainer", "exec", *apptainer_args, plan.image,
            "torchrun", "--nnodes", str(plan.nodes), "--nproc-per-node", str(max(plan.gpus_per_node, 1)),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", step.job_id,
            "--rdzv-conf", f"is_host={'true' if step.node_rank == 0 else 'false'}",
            "--no-python", *command]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nodes", type=int, default=1, help="nodes of the job (default 1)")
    parser.add_argument("--gpus-per-node", type=int, default=0, help="GPUs per node = torchrun processes per node")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="CPUs of the one srun task per node")
    parser.add_argument("--image", default=None, help="Apptainer image every node runs in (multi-node)")
    parser.add_argument("--apptainer-args", default="--nv",
                        help="options of 'apptainer exec' (write --apptainer-args='--nv --bind /scratch')")
    parser.add_argument("--port", type=int, default=None, help="rendezvous port (default: derived from the job id)")
    parser.add_argument("--on-node", action="store_true", help="internal: the per-node step inside srun")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD...: the command to start")


def run(args: argparse.Namespace) -> int | None:
    """Build the command for this side of the launch and exec it (so signals reach it directly)."""
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("tinyrs launch: no command given (tinyrs launch [options] -- CMD...)", file=sys.stderr)
        return 2
    plan = LaunchPlan(nodes=args.nodes, gpus_per_node=args.gpus_per_node, cpus_per_node=args.cpus_per_node,
                      image=args.image, apptainer_args=args.apptainer_args, port=args.port)
    try:
        if args.nodes > 1 and not args.on_node and "SLURM_JOB_ID" not in os.environ and not args.dry_run:
            raise LaunchError(f"--nodes {args.nodes} needs a SLURM allocation (SLURM_JOB_ID is not set): run the "
                              "workflow with --profile profiles/slurm, or inside sbatch/salloc")
        argv = node_command(plan, command, slurm_step()) if args.on_node else outer_command(plan, command)
    except LaunchError as err:
        print(f"tinyrs launch: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(shlex.join(argv))
        return 0
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # replaces this process


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinyrs.cluster.launch", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # the per-node step srun starts: it needs this module, not the whole CLI
    sys.exit(main())
