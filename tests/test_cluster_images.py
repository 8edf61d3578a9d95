"""Apptainer images: envs/*.yaml is the one source of pins; containers/*.def must agree; our header/section
check catches what spython lets through; the build records a digest the workflow then checks."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyrs.cluster import images
from tinyrs.cluster.images import (IMAGES, ImageError, agreement_problems, build_image, definition_problems,
                                   image_path, lock_problems, parse_definition, read_env, render_definition)
from tinyrs.io import read_json

REPO = Path(__file__).resolve().parent.parent
APPTAINER_DOUBLE = REPO / "tests" / "slurm" / "bin" / "apptainer"


@pytest.fixture()
def copy_of(tmp_path):
    """envs/<name>.yaml and containers/<name>.def copied to tmp_path (envs/, containers/)."""

    def copy(name: str) -> tuple[Path, Path]:
        (tmp_path / "envs").mkdir(exist_ok=True)
        (tmp_path / "containers").mkdir(exist_ok=True)
        env = Path(shutil.copy(images.env_path(name), tmp_path / "envs"))
        definition = Path(shutil.copy(images.definition_path(name), tmp_path / "containers"))
        return env, definition

    return copy


@pytest.mark.parametrize("name", IMAGES)
def test_committed_definition_agrees_with_its_env(name):
    assert agreement_problems(images.env_path(name), images.definition_path(name)) == []
    assert definition_problems(images.definition_path(name)) == []


@pytest.mark.parametrize("name", IMAGES)
def test_spython_parses_each_definition(name):
    env = read_env(images.env_path(name))
    recipe = parse_definition(images.definition_path(name))
    assert recipe.fromHeader == env.base.lower()
    assert f"org.tinyrs.pip.torch {env.pip['torch']}" in recipe.labels
    assert any(f"torch=={env.pip['torch']}" in line for line in recipe.install)
    assert recipe.test  # the %test section (imports, nvidia-smi / torch.cuda) is there


def test_a_pin_changed_in_the_env_only_is_caught(copy_of):
    env, definition = copy_of("sft")
    env.write_text(env.read_text().replace("transformers==5.19.0", "transformers==5.22.0"))
    problems = "\n".join(agreement_problems(env, definition))
    assert "%post (pip) has transformers 5.19.0 but" in problems and "pins 5.22.0" in problems
    assert "org.tinyrs.pip.transformers" in problems
    assert "run `tinyrs images render sft`" in problems


def test_a_hand_edited_definition_is_caught(copy_of):
    env, definition = copy_of("grpo")
    definition.write_text(definition.read_text().replace("        vllm==0.32.0 \\\n", "        vllm==0.33.0 \\\n"))
    problems = "\n".join(agreement_problems(env, definition))
    assert "%post (pip) has vllm 0.33.0 but" in problems


def test_a_package_dropped_from_the_definition_is_caught(copy_of):
    env, definition = copy_of("eval")
    definition.write_text(definition.read_text().replace("        ninja==1.13.2\n", "").replace(
        "        tensorboard==2.21.0 \\\n", "        tensorboard==2.21.0\n"))
    assert any("%post (pip) lacks ninja" in p for p in agreement_problems(env, definition))


def test_a_rendered_copy_agrees_again(copy_of):
    env, definition = copy_of("sft")
    env.write_text(env.read_text().replace("deepspeed==0.19.8", "deepspeed==0.19.7"))
    definition.write_text(render_definition(read_env(env)))
    assert agreement_problems(env, definition) == []


def test_env_pins_must_be_exact(copy_of):
    env, _ = copy_of("sft")
    env.write_text(env.read_text().replace("trl==1.16.0", "trl>=1.16"))
    with pytest.raises(ImageError, match="'trl>=1.16' is not an exact pin"):
        read_env(env)


def test_our_check_rejects_a_section_spython_accepts(copy_of):
    _, definition = copy_of("sft")
    definition.write_text(definition.read_text().replace("%test\n", "%tests\n"))
    assert parse_definition(definition).test is None  # spython drops the section silently (REFERENCE.md §7) ...
    problems = definition_problems(definition)  # ... so we check section names ourselves
    assert len(problems) == 1 and "unknown section '%tests'" in problems[0]


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("Bootstrap: docker\n", ""), "the first header line must be 'Bootstrap: <agent>'"),
    (lambda t: t.replace("Bootstrap: docker", "Bootstrap: dockr"), "unknown bootstrap agent 'dockr'"),
    (lambda t: t.replace("From: ", "Form: "), "is not a header keyword line"),
    (lambda t: t.replace("From: nvidia/cuda:13.0.2-cudnn-devel-ubuntu24.04\n", ""), "needs a 'From:' header"),
    (lambda t: t + "%post\n    true\n", "section '%post' appears twice"),
])
def test_our_check_rejects_bad_headers(copy_of, edit, message):
    _, definition = copy_of("sft")
    definition.write_text(edit(definition.read_text()))
    assert any(message in problem for problem in definition_problems(definition))


def test_build_records_the_digest_and_the_workflow_checks_it(tmp_path, copy_of):
    """`apptainer build` is the Apptainer test double here (tests/slurm/bin/apptainer writes a stand-in .sif)."""
    env, definition = copy_of("sft")
    envs, containers, lock = env.parent, definition.parent, definition.parent / "images.lock.json"
    paths = dict(envs_dir=envs, containers_dir=containers, lock_path=lock)
    entry = build_image("sft", apptainer=str(APPTAINER_DOUBLE), **paths)
    sif = containers / "sft.sif"
    assert read_json(lock)["sft"] == entry and entry["image"] == "sft.sif"
    assert entry["sha256"] == images.sha256_file(sif) and entry["size"] == sif.stat().st_size
    assert entry["apptainer"] == "apptainer version 1.3.6"
    assert image_path("sft", None, lock, containers) == sif.resolve()
    assert lock_problems("sft", lock, containers, digests=True) == []

    built_at = sif.stat().st_mtime_ns
    assert build_image("sft", apptainer=str(APPTAINER_DOUBLE), **paths) == entry  # current: not rebuilt
    assert sif.stat().st_mtime_ns == built_at

    definition.write_text(definition.read_text() + "\n")
    assert any("changed since" in p for p in lock_problems("sft", lock, containers))
    with pytest.raises(ImageError, match="changed since"):
        image_path("sft", None, lock, containers)
    with pytest.raises(ImageError, match="refusing to build"):  # the edited definition no longer agrees
        build_image("sft", apptainer=str(APPTAINER_DOUBLE), **paths)

    definition.write_text(render_definition(read_env(env)))
    sif.write_bytes(sif.read_bytes()[:-1] + b"!")  # same size, other content: only the digest check sees it
    assert lock_problems("sft", lock, containers) == []
    assert any("sha256 differs" in p for p in lock_problems("sft", lock, containers, digests=True))


def test_image_path_prefers_a_configured_file(tmp_path):
    sif = tmp_path / "site.sif"
    sif.write_bytes(b"x")
    assert image_path("eval", str(sif), tmp_path / "missing.lock.json") == sif.resolve()
    with pytest.raises(ImageError, match="resources.images.eval: .* does not exist"):
        image_path("eval", str(tmp_path / "nope.sif"), tmp_path / "missing.lock.json")
    with pytest.raises(ImageError, match="no image 'eval' recorded; run `make images`"):
        image_path("eval", None, tmp_path / "missing.lock.json")
