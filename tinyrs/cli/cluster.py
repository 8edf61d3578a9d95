"""Cluster commands: ``tinyrs images render|check|build|test``, ``tinyrs cluster check-resources``,
``tinyrs launch [options] -- CMD...`` (see docs/cluster.md)."""
from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    from tinyrs.cluster import launch
    from tinyrs.cluster.images import IMAGES

    images = subparsers.add_parser("images", help="Apptainer images rendered from envs/*.yaml").add_subparsers(
        dest="images_command", required=True)
    names = dict(nargs="*", type=_image_name, metavar="IMAGE", help=f"images (default: all of {', '.join(IMAGES)})")

    render = images.add_parser("render", help="write containers/<image>.def from envs/<image>.yaml")
    render.add_argument("names", **names)
    render.set_defaults(func=images_render)

    check = images.add_parser("check", help="definitions agree with their env files; built images match the lock")
    check.add_argument("names", **names)
    check.add_argument("--built", action="store_true", help="also require each image to be built and current")
    check.add_argument("--digests", action="store_true", help="with --built: also compare each .sif's sha256")
    check.set_defaults(func=images_check)

    build = images.add_parser("build", help="apptainer build each image (unless current), record its digest")
    build.add_argument("names", **names)
    build.add_argument("--force", action="store_true", help="rebuild even if the recorded image is current")
    build.add_argument("--apptainer", default="apptainer", help="the apptainer binary")
    build.add_argument("--build-arg", action="append", default=[], dest="build_args", metavar="ARG",
                       help="extra option of 'apptainer build', e.g. --build-arg=--fakeroot (repeatable)")
    build.set_defaults(func=images_build)

    test = images.add_parser("test", help="build each image's CPU test environment (cached) and run its tests there",
                             description="Each image's pins from envs/<image>.yaml in a CPU virtual environment "
                                         "(tinyrs/cluster/testenvs.py says what stands in for CUDA-only packages), "
                                         "then the tests of what that image's jobs run.")
    test.add_argument("names", nargs="*", type=_tested_image, metavar="IMAGE",
                      help="images (default: grpo, eval, eval-lmdeploy; the sft image's environment is the dev venv)")
    test.add_argument("--pytest-arg", action="append", default=[], dest="pytest_args", metavar="ARG",
                      help="extra pytest argument, e.g. --pytest-arg=-x (repeatable)")
    test.set_defaults(func=images_test)

    cluster = subparsers.add_parser("cluster", help="SLURM requests of the GPU jobs").add_subparsers(
        dest="cluster_command", required=True)
    resources = cluster.add_parser("check-resources", help="refuse requests the partitions can never satisfy")
    resources.add_argument("--config", action="append", dest="configs", metavar="FILE",
                           help="config file(s) merged in order, of which only `resources` is read (default: config.yaml)")
    resources.add_argument("--live", action="store_true", help="also check against the nodes sinfo reports")
    resources.set_defaults(func=check_resources)

    run = subparsers.add_parser("launch", help="start a command on a job's GPUs (torchrun; srun + Apptainer)",
                                description=launch.__doc__.splitlines()[0])
    launch.add_arguments(run)
    run.set_defaults(func=launch.run)


def _image_name(text: str) -> str:
    from tinyrs.cluster.images import IMAGES

    if text not in IMAGES:
        raise argparse.ArgumentTypeError(f"unknown image '{text}' (known: {', '.join(IMAGES)})")
    return text


def _tested_image(text: str) -> str:
    from tinyrs.cluster.testenvs import TESTED_IMAGES

    if text not in TESTED_IMAGES:
        raise argparse.ArgumentTypeError(f"no separate test environment for '{text}' (those: {', '.join(TESTED_IMAGES)})")
    return text


def _report(problems: list[str], ok: str) -> int:
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(ok)
    return 0


def images_render(args: argparse.Namespace) -> int:
    from tinyrs.cluster.images import IMAGES, render

    for name in args.names or IMAGES:
        print(render(name))
    return 0


def images_check(args: argparse.Namespace) -> int:
    from tinyrs.cluster.images import (IMAGES, agreement_problems, definition_path, definition_problems, env_path,
                                       lock_problems)

    problems = []
    for name in args.names or IMAGES:
        problems += agreement_problems(env_path(name), definition_path(name))
        if definition_path(name).exists():
            problems += definition_problems(definition_path(name))
        if args.built:
            problems += lock_problems(name, digests=args.digests)
    return _report(problems, "images: definitions agree with envs/*.yaml" + (" and the lock" if args.built else ""))


def images_build(args: argparse.Namespace) -> int:
    from tinyrs.cluster.images import IMAGES, ImageError, build_image

    for name in args.names or IMAGES:
        try:
            entry = build_image(name, apptainer=args.apptainer, build_args=tuple(args.build_args), force=args.force)
        except ImageError as err:
            print(f"tinyrs images build: {err}", file=sys.stderr)
            return 1
        print(f"{name}: {entry['image']} sha256 {entry['sha256']}")
    return 0


def images_test(args: argparse.Namespace) -> int:
    import time

    from tinyrs.cluster.images import REPO
    from tinyrs.cluster.testenvs import TESTED_IMAGES, TestEnvError, build, run_tests

    failed = []
    for name in args.names or TESTED_IMAGES:
        started = time.monotonic()
        try:
            env = build(name)
        except TestEnvError as err:
            print(f"tinyrs images test: {err}", file=sys.stderr)
            return 1
        built = time.monotonic()
        code = run_tests(name, env, REPO, tuple(args.pytest_args))
        print(f"tinyrs images test {name}: environment {built - started:.0f} s, tests {time.monotonic() - built:.0f} s, "
              f"{'passed' if code == 0 else f'FAILED (pytest exit {code})'}", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"tinyrs images test: failed in {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def check_resources(args: argparse.Namespace) -> int:
    from tinyrs.cluster.resources import live_problems, resource_problems, sinfo_nodes
    from tinyrs.config import deep_merge, read_yaml

    merged: dict = {}
    for path in args.configs or ["config.yaml"]:
        merged = deep_merge(merged, read_yaml(path))
    resources = merged.get("resources")
    problems = resource_problems(resources)
    if not problems and args.live:
        problems = live_problems(resources, sinfo_nodes())
    where = " and fit the nodes sinfo reports" if args.live else ""
    return _report(problems, f"resources: {len(resources['jobs']) if resources else 0} job(s) fit their partitions{where}")
