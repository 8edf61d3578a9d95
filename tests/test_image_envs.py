"""The test environments are the images' environments: same pins, and every difference named with its reason.

The development venv is the sft image's test environment (the whole suite runs in it); the grpo, eval and
eval-lmdeploy images each get a venv of their own (``tinyrs images test``, run by ``make test``).
"""
from __future__ import annotations

from importlib import metadata

import pytest

from tinyrs import preflight
from tinyrs.cluster.images import IMAGES, read_env
from tinyrs.cluster.testenvs import CPU_BUILDS, CUDA_ONLY, IMAGE_TESTS, plan

pytestmark = pytest.mark.images("sft")


def test_the_dev_venv_holds_every_pin_of_the_sft_image(repo_root):
    env = read_env(repo_root / "envs" / "sft.yaml")
    wrong = {}
    for name, version in env.pip.items():
        if name in CUDA_ONLY:
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            wrong[name] = (version, installed)
    assert not wrong, f"envs/sft.yaml pin vs installed in the dev venv: {wrong}"


@pytest.mark.parametrize("image", IMAGES)
def test_each_pin_is_installed_stood_in_for_or_left_out_with_a_reason(repo_root, image):
    env = read_env(repo_root / "envs" / f"{image}.yaml")
    image_plan = plan(image)
    pinned = {line.partition("===")[0]: line.partition("===")[2] for line in image_plan.pins}
    cpu_builds = {line.partition("===")[0]: line.partition("===")[2] for line in image_plan.cpu_builds}
    for name, version in env.pip.items():
        if name in CUDA_ONLY:
            assert name in image_plan.left_out and name not in pinned
        elif name in CPU_BUILDS:
            assert cpu_builds[CPU_BUILDS[name]] == version, "the CPU build must be the image's release"
        else:
            assert pinned[name] == version
    assert set(pinned) | {n for n in env.pip if n in CPU_BUILDS or n in CUDA_ONLY} == set(env.pip)


def test_pins_never_match_a_local_build():
    """``===`` compares the version string: the machine's torch 2.13.0+cpu cannot stand in for torch 2.13.0."""
    from packaging.specifiers import SpecifierSet

    (torch_pin,) = [pin for pin in plan("grpo").pins if pin.startswith("torch===")]
    specifier = SpecifierSet(torch_pin.removeprefix("torch"))
    assert "2.13.0" in specifier and "2.13.0+cpu" not in specifier


def test_every_image_but_sft_has_its_own_tests(repo_root):
    assert set(IMAGE_TESTS) == set(IMAGES) - {"sft"}
    for files in IMAGE_TESTS.values():
        assert all((repo_root / "tests" / name).exists() for name in files)


def test_the_liger_table_agrees_with_liger_itself():
    """Where liger-kernel is installed (the sft image), our verdict on it is what applying its Qwen2-VL patch does
    (in a child process: a patch that applies changes transformers' classes for the rest of the session)."""
    import subprocess
    import sys

    installed = {name: metadata.version(name) for name in ("liger-kernel", "transformers")}
    result = subprocess.run([sys.executable, "-c", "from liger_kernel.transformers import "
                             "apply_liger_kernel_to_qwen2_vl as apply; apply()"], capture_output=True, text=True)
    assert "ModuleNotFoundError" not in result.stderr, result.stderr[-2000:]
    applies = result.returncode == 0
    assert (preflight.liger_problems(installed) == []) == applies, (installed, result.stderr[-2000:])
