"""The Snakemake workflow as a user meets it: the real config resolves fast, bad input is named clearly."""
from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from dry_runs import planned_jobs, planned_resources

BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}")
    return subprocess.run(["timeout", "-k", "10", str(timeout), *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def test_dry_run_of_the_real_config_resolves_in_seconds(repo_root, tmp_path):
    started = time.time()
    result = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"workdir={tmp_path}/w"],
                 repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert time.time() - started < 60
    out = result.stdout + result.stderr
    for rule in ("fetch_dataset", "correct_list", "oversample_list", "base_model", "pretrain", "sft", "cot", "grpo",
                 "eval_task", "external_model", "report"):
        assert rule in out, rule


def test_parsing_the_workflow_writes_nothing(repo_root, tmp_path):
    """A dry run (and a second instance the lock refuses) must not change any file: settings files are written by
    the stage_settings jobs, not while the Snakefile is read."""
    workdir = tmp_path / "w"
    result = run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/demo", "--config",
                  f"workdir={workdir}"], repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage_settings" in result.stdout and not workdir.exists()


def test_bad_config_key_stops_the_workflow_with_the_key_named(repo_root, tmp_path):
    overlay = tmp_path / "typo.yaml"
    overlay.write_text(yaml.safe_dump({"grpo_defaults": {"num_generation": 8}}))
    result = run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "config.yaml",
                  str(overlay), "--config", f"workdir={tmp_path}/w"], repo_root)
    assert result.returncode != 0
    assert "unknown key 'grpo_defaults.num_generation'" in result.stdout + result.stderr


def test_missing_inputs_are_named(tmp_path):
    settings = tmp_path / "sft.json"
    settings.write_text("{}")
    result = run([str(BIN / "tinyrs"), "train", "--settings", str(tmp_path / "absent.json"), "--init",
                  str(tmp_path / "no-model"), "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path / "o"),
                  "--checkpoints", str(tmp_path / "c")], tmp_path)
    assert result.returncode == 2
    assert "missing input" in result.stderr and "absent.json" in result.stderr
    result = run([str(BIN / "tinyrs"), "data", "correct", "--list", str(tmp_path / "absent-list.json"),
                  "--image-root", str(tmp_path), "--out-dir", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2 and "absent-list.json" in result.stderr


# --- published checkpoints as eval columns -------------------------------------------------------------------------

PUBLISHED = ["TinyRS", "TinyRS-CoT", "TinyRS-R1"]
TASKS = 12


def dry_run(repo_root: Path, workdir: Path, *args: str, overlays: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """A dry run of the real config (plus overlays) with the shell commands printed."""
    configs = ["--configfile", "config.yaml", *map(str, overlays)] if overlays else []
    return run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", *configs, "--config",
                f"workdir={workdir}", *args], repo_root)


def written_settings(repo_root: Path, workdir: Path, names: list[str], *args: str) -> dict[str, dict]:
    """Run the stage_settings jobs of ``names`` (nothing else) and read the files the commands will read."""
    targets = [str(workdir / "settings" / f"{name}.json") for name in names]
    result = run([sys.executable, "-m", "snakemake", *targets, "--cores", "1", *args, "--config",
                  f"workdir={workdir}"], repo_root)
    assert result.returncode == 0, result.stderr[-3000:]
    return {name: json.loads(Path(target).read_text()) for name, target in zip(names, targets)}


def test_published_models_are_fetched_through_the_mirror_and_evaluated(repo_root, tmp_path):
    overlay = tmp_path / "site.yaml"
    overlay.write_text(yaml.safe_dump({"hub": {"mirror": "/srv/hub-mirror"}}))
    workdir = tmp_path / "w"
    result = dry_run(repo_root, workdir, overlays=(overlay,))
    jobs = planned_jobs(result)
    assert jobs["external_model"] == len(PUBLISHED) and jobs["eval_task"] == (5 + len(PUBLISHED)) * TASKS
    settings = written_settings(repo_root, workdir, [f"model-{name}" for name in PUBLISHED] + ["report"],
                                "--configfile", "config.yaml", str(overlay))
    for name in PUBLISHED:
        assert (f"tinyrs model fetch --settings {workdir}/settings/model-{name}.json "
                f"--out {workdir}/models/{name} ") in result.stdout
        assert settings[f"model-{name}"] == {"stage": name, "repo": f"aybora/Qwen2-VL-{name}", "revision": "main",
                                             "mirror": "/srv/hub-mirror", "family": None}
        assert f"--settings {workdir}/settings/eval-{name}.json --model {workdir}/models/{name}/" \
               f"tinyrs_manifest.json" in result.stdout
        assert settings["report"]["external"][name] == f"aybora/Qwen2-VL-{name}@main"
    assert settings["report"]["stages"] == ["base", "pretrain", "sft", "cot", "grpo", *PUBLISHED]
    assert settings["report"]["grpo_log"] == f"{workdir}/models/grpo/train_log.json"
    assert settings["report"]["reward_check"] == [f"{workdir}/rewards/cot.json", f"{workdir}/rewards/grpo.json"]
    assert jobs["reward_check"] == 2
    for model in ("cot", "grpo"):
        assert (f"tinyrs rewards sample --settings {workdir}/settings/reward-check.json --model "
                f"{workdir}/models/{model}/tinyrs_manifest.json --data {workdir}/hub/grpo ") in result.stdout
    assert f"tinyrs report --settings {workdir}/settings/report.json " in result.stdout


def test_the_demo_evaluates_a_stand_in_from_its_own_mirror(repo_root, tmp_path):
    workdir = tmp_path / "w"
    result = run([sys.executable, "-m", "snakemake", "-n", "-p", "--profile", "profiles/demo", "--config",
                  f"workdir={workdir}"], repo_root)
    jobs = planned_jobs(result)
    assert (jobs["demo_published_model"], jobs["external_model"], jobs["eval_stage"]) == (1, 1, 6)
    settings = written_settings(repo_root, workdir, ["model-published-demo"], "--profile", "profiles/demo")
    assert settings["model-published-demo"] == {"stage": "published-demo", "repo": "tinyrs-demo/Qwen2-VL-tiny-published",
                                                "revision": "main", "mirror": f"{workdir}/demo-hub", "family": None}
    assert (f"tinyrs model to-mirror --settings {workdir}/settings/model-published-demo.json "
            f"--model {workdir}/models/base/tinyrs_manifest.json ") in result.stdout
    assert f"{workdir}/demo-hub/Qwen2-VL-tiny-published/config.json" in result.stdout
    assert (f"tinyrs model fetch --settings {workdir}/settings/model-published-demo.json "
            f"--out {workdir}/models/published-demo ") in result.stdout
    assert f"--out-dir {workdir}/eval/published-demo " in result.stdout


# --- sites: a profile folder with the executor settings, the account, and the site.yaml overlay -------------------

GPU_RULES = {"pretrain", "sft", "cot", "grpo", "eval_task", "reward_check"}


def make_site(repo_root: Path, tmp_path: Path, account: str, partition: str) -> Path:
    """profiles/slurm copied to a new site as docs/cluster.md says: its config.yaml names its own site.yaml and the
    account, its site.yaml the GPU partition (and, here, stand-in images: no `make images` in a test)."""
    site = tmp_path / "profiles" / "testsite"
    shutil.copytree(repo_root / "profiles" / "slurm", site)
    profile = (site / "config.yaml").read_text()
    (site / "config.yaml").write_text(profile.replace("profiles/slurm/site.yaml", str(site / "site.yaml"))
                                      .replace('slurm_account: "tinyrs"', f'slurm_account: "{account}"'))
    overlay = yaml.safe_load((site / "site.yaml").read_text())
    overlay["resources"]["partitions"] = {partition: overlay["resources"]["partitions"]["gpu"]}
    overlay["resources"]["jobs"] = {job: {"partition": partition} for job in overlay["resources"]["jobs"]}
    overlay["resources"]["images"] = {}
    for image in ("sft", "grpo", "eval", "eval-lmdeploy"):
        (tmp_path / f"{image}.sif").write_bytes(b"stand-in image")
        overlay["resources"]["images"][image] = str(tmp_path / f"{image}.sif")
    (site / "site.yaml").write_text(yaml.safe_dump(overlay))
    return site


@pytest.fixture()
def site_dry_run(repo_root, tmp_path, monkeypatch):
    """`tinyrs run --profile <copied site> -n`: Apptainer is the test double of tests/slurm/bin."""
    monkeypatch.setenv("PATH", f"{repo_root / 'tests' / 'slurm' / 'bin'}:{os.environ['PATH']}")
    site = make_site(repo_root, tmp_path, account="proj42", partition="batch")
    return run([str(BIN / "tinyrs"), "run", "--profile", str(site), "-n", "--config", f"workdir={tmp_path}/w"],
               repo_root)


def test_a_copied_site_plans_its_gpu_jobs_on_its_partition(site_dry_run):
    jobs = planned_resources(site_dry_run)
    gpu_jobs = [resources for rule, resources in jobs if rule in GPU_RULES]
    assert {rule for rule, _ in jobs} >= GPU_RULES and len(gpu_jobs) == sum(
        count for rule, count in planned_jobs(site_dry_run).items() if rule in GPU_RULES)
    assert {resources["slurm_partition"] for resources in gpu_jobs} == {"batch"}
    assert {resources["gres"] for resources in gpu_jobs} == {"gpu:h100:4", "gpu:h100:8", "gpu:h100:1"}
    assert {resources["slurm_partition"] for rule, resources in jobs if rule not in GPU_RULES} == {"cpu"}


def test_the_account_set_once_in_the_site_profile_reaches_every_job(site_dry_run):
    jobs = planned_resources(site_dry_run)
    assert {rule for rule, _ in jobs} >= GPU_RULES
    assert {resources["slurm_account"] for _, resources in jobs} == {"proj42"}


def test_tinyrs_run_checks_the_site_overlay(repo_root, tmp_path):
    site = make_site(repo_root, tmp_path, account="proj42", partition="batch")
    with (site / "site.yaml").open("a") as overlay:
        overlay.write("account: proj42\n")
    result = run([str(BIN / "tinyrs"), "run", "--profile", str(site), "-n"], repo_root)
    assert result.returncode == 2
    assert f"{site / 'site.yaml'}: unknown key 'account'" in result.stderr


# --- a stage is a line of config ------------------------------------------------------------------------------------

DEMO_COLUMNS = ["base", "pretrain", "sft", "cot", "grpo", "published-demo"]


def _demo_with(tmp_path: Path, overlay: dict) -> tuple[Path, ...]:
    """The demo's config files (profiles/demo) plus ``overlay``."""
    path = tmp_path / "stages.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return Path("profiles/demo/overrides.yaml"), path


def test_a_second_sft_stage_is_a_config_entry(repo_root, tmp_path):
    workdir = tmp_path / "w"
    overlays = _demo_with(tmp_path, {
        "stages": {"sft2": {"kind": "sft", "init": "sft", "data": "sft", "system_prompt": "default", "epochs": 1}},
        "eval": {"stages": [*DEMO_COLUMNS, "sft2"], "prompt_style": {"sft2": "tinyrs"}}})
    result = dry_run(repo_root, workdir, overlays=overlays)
    jobs = planned_jobs(result)
    assert all(jobs[stage] == 1 for stage in ("pretrain", "sft", "sft2", "cot", "grpo"))
    assert jobs["eval_stage"] == len(DEMO_COLUMNS) + 1
    assert (f"tinyrs train --settings {workdir}/settings/sft2.json --init {workdir}/models/sft/tinyrs_manifest.json "
            f"--data {workdir}/data/sft/manifest.parquet --out {workdir}/models/sft2 ") in result.stdout
    assert f"--model {workdir}/models/sft2/tinyrs_manifest.json" in result.stdout
    args = ["--configfile", "config.yaml", *map(str, overlays)]
    settings = written_settings(repo_root, workdir, ["sft2", "report"], *args)
    assert (settings["sft2"]["kind"], settings["sft2"]["init"], settings["sft2"]["epochs"]) == ("sft", "sft", 1)
    assert settings["report"]["stages"] == [*DEMO_COLUMNS, "sft2"]
    assert planned_jobs(dry_run(repo_root, tmp_path / "fresh", "--until", "sft2", overlays=overlays))["sft2"] == 1


def test_removing_a_stage_is_a_config_edit(repo_root, tmp_path):
    """No CoT: GRPO starts from SFT, and neither a CoT job nor its eval is planned."""
    workdir = tmp_path / "w"
    overlays = _demo_with(tmp_path, {"stages": {"cot": None, "grpo": {"init": "sft"}},
                                     "eval": {"stages": [column for column in DEMO_COLUMNS if column != "cot"]}})
    result = dry_run(repo_root, workdir, overlays=overlays)
    jobs = planned_jobs(result)
    assert "cot" not in jobs and jobs["grpo"] == 1 and jobs["eval_stage"] == len(DEMO_COLUMNS) - 1
    assert (f"tinyrs train --settings {workdir}/settings/grpo.json --init {workdir}/models/sft/tinyrs_manifest.json "
            f"--data {workdir}/hub/grpo --out {workdir}/models/grpo ") in result.stdout
    assert f"{workdir}/models/cot" not in result.stdout


# --- thin rules: the linter, rule names, the eval layouts ----------------------------------------------------------

@pytest.mark.parametrize("overlay", [{}, {"eval": {"shards": 3}}, "profiles/demo/overrides.yaml"])
def test_snakemake_lint_finds_nothing(repo_root, tmp_path, overlay):
    """`snakemake --lint` (9.27) exits 1 and prints "Lints for ..." per finding; clean, it exits 0 and says so.
    Rules defined only under some configs (the demo's, the tiny base model) are linted with the demo overlay."""
    if isinstance(overlay, dict):
        path = tmp_path / "overlay.yaml"
        path.write_text(yaml.safe_dump(overlay))
        overlay = str(path)
    result = run([sys.executable, "-m", "snakemake", "--lint", "--configfile", "config.yaml", overlay], repo_root)
    out = result.stdout + result.stderr
    assert result.returncode == 0 and "Lints for" not in out, out[-5000:]
    assert "Congratulations, your workflow is in a good condition!" in out


def test_rule_names_do_not_depend_on_the_eval_layout(repo_root, tmp_path):
    listed = set()
    for layout in ({"group_tasks": True}, {"group_tasks": False}, {"shards": 3}):
        overlay = tmp_path / "layout.yaml"
        overlay.write_text(yaml.safe_dump({"eval": layout}))
        result = run([sys.executable, "-m", "snakemake", "--list-rules", "--configfile", "config.yaml", str(overlay)],
                     repo_root)
        assert result.returncode == 0, result.stderr[-3000:]
        listed.add(frozenset(result.stdout.split()))
    (names,) = listed
    assert {"eval_stage", "eval_task", "eval_shard", "eval_merge"} <= names


def test_sharded_eval_plans_shards_and_their_merge(repo_root, tmp_path):
    overlay = tmp_path / "shards.yaml"
    overlay.write_text(yaml.safe_dump({"eval": {"shards": 3}}))
    result = dry_run(repo_root, tmp_path / "w", overlays=(overlay,))
    jobs = planned_jobs(result)
    columns = 5 + len(PUBLISHED)
    assert (jobs["eval_shard"], jobs["eval_merge"]) == (3 * TASKS * columns, TASKS * columns)
    assert not {"eval_task", "eval_stage"} & set(jobs)
    assert f"--tasks rs_vg --shard 2/3 > {tmp_path}/w/logs/eval_grpo_rs_vg_2-of-3.log" in result.stdout


# --- the rerun commands of docs/cluster.md, in every eval layout -------------------------------------------------

def documented_rerun_commands(repo_root: Path) -> list[list[str]]:
    """The flags of each command in the code block of docs/cluster.md's "Rerunning from a stage"."""
    section = (repo_root / "docs" / "cluster.md").read_text().split("### Rerunning from a stage", 1)[1]
    block = section.split("```bash", 1)[1].split("```", 1)[0]
    commands = []
    for line in block.splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if words:
            assert words[:3] == ["snakemake", "--profile", "profiles/slurm"], line
            commands.append(words[3:])
    return commands


def _layout(tmp_path: Path, group_tasks: bool) -> Path:
    overlay = tmp_path / f"layout-{group_tasks}.yaml"
    overlay.write_text(yaml.safe_dump({"eval": {"group_tasks": group_tasks}}))
    return overlay


def _finished_workdir(repo_root: Path, workdir: Path, overlay: Path) -> None:
    """Every output of the workflow, present and up to date (empty files, one timestamp): a finished run as
    Snakemake plans it, in seconds."""
    summary = run([sys.executable, "-m", "snakemake", "--summary", "--cores", "1", "--configfile", "config.yaml",
                   str(overlay), "--config", f"workdir={workdir}"], repo_root)
    assert summary.returncode == 0, summary.stderr[-3000:]
    outputs = [line.split("\t")[0] for line in summary.stdout.splitlines()[1:] if line.strip()]
    assert any(path.endswith("report/results.md") for path in outputs)
    now = time.time()
    for path in outputs:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
        os.utime(path, (now, now))


def _expected_plan(flags: list[str], group_tasks: bool) -> dict[str, int]:
    """What each documented command reruns in a finished work directory."""
    columns = ["base", "pretrain", "sft", "cot", "grpo", *PUBLISHED]

    def evals(*stages: str) -> dict[str, int]:
        return {"eval_stage": len(stages)} if group_tasks else {"eval_task": TASKS * len(stages)}

    after = {"report": 1, "all": 1}
    plans = {
        ("--until", "work/models/sft/tinyrs_manifest.json"): {},
        ("--until", "sft"): {},
        ("--forcerun", "work/models/cot/tinyrs_manifest.json"): {"cot": 1, "grpo": 1, **evals("cot", "grpo"),
                                                                  "reward_check": 2, **after},
        ("--forcerun", "grpo"): {"grpo": 1, **evals("grpo"), "reward_check": 1, **after},
        ("--forcerun", "work/settings/eval-grpo.json"): {"stage_settings": 1, **evals("grpo"), **after},
        ("--forcerun", "work/settings/eval-*.json"): {"stage_settings": len(columns), **evals(*columns), **after},
        ("--forcerun", "work/models/TinyRS/tinyrs_manifest.json"): {"external_model": 1, **evals("TinyRS"), **after},
    }
    assert tuple(flags) in plans, f"docs/cluster.md documents {flags}: say here what it must rerun"
    return plans[tuple(flags)]


def _in(workdir: Path, flags: list[str]) -> list[str]:
    """The flags with the docs' `work/` made the test's work directory, globs expanded as a shell would."""
    args = []
    for flag in flags:
        if flag.startswith("work/"):
            flag = f"{workdir}/{flag.removeprefix('work/')}"
        matches = sorted(glob.glob(flag)) if "*" in flag else []
        args += matches or [flag]
    return args


@pytest.mark.parametrize("group_tasks", [True, False])
def test_every_documented_rerun_command_works_in_this_eval_layout(repo_root, tmp_path, group_tasks):
    commands = documented_rerun_commands(repo_root)
    assert any("eval-grpo.json" in " ".join(flags) for flags in commands)
    overlay = _layout(tmp_path, group_tasks)
    finished = tmp_path / "finished"
    _finished_workdir(repo_root, finished, overlay)
    assert planned_jobs(dry_run(repo_root, finished, overlays=(overlay,))) == {}
    for flags in commands:
        plan = planned_jobs(dry_run(repo_root, finished, *_in(finished, flags), overlays=(overlay,)))
        assert plan == _expected_plan(flags, group_tasks), flags
        if flags[0] == "--until":  # from scratch: up to SFT and nothing after it
            fresh = planned_jobs(dry_run(repo_root, tmp_path / "fresh", *_in(tmp_path / "fresh", flags),
                                         overlays=(overlay,)))
            assert fresh["sft"] == 1 and not set(fresh) & {"cot", "grpo", "eval_stage", "eval_task",
                                                          "external_model", "report"}, fresh
