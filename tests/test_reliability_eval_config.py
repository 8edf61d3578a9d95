"""Regression cases: bad prediction files, config errors under Snakemake, the judge's key and URL.

One test per reported failure, each on the input that showed it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrs.cli import build_parser, main
from tinyrs.io import DataError
from tinyrs.settings import JudgeSettings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.yaml"


# --- 9. one JSONL reader: bad lines named, counted or fatal; duplicates and empty files are errors -------------

def _prediction(index: int) -> str:
    correct = index % 4 != 0  # 15 of 20 right, so dropping a line moves the accuracy
    return json.dumps({"index": index, "pred": "forest" if correct else "beach", "answer": "forest"})


def _predictions(tmp_path: Path, lines: list[str], tail: str = "\n") -> Path:
    path = tmp_path / "cls_aid.jsonl"
    path.write_text("\n".join(lines) + tail, encoding="utf-8")
    return path


def _score(path: Path, *extra: str) -> int:
    return main(["eval", "score", "--task", "cls_aid", "--predictions", str(path), "--config", str(CONFIG),
                 "--output", str(path.with_suffix(".metrics.json")), *extra])


def _accuracy(path: Path) -> dict:
    return json.loads(path.with_suffix(".metrics.json").read_text())


TWENTY = [_prediction(i) for i in range(20)]


def test_eval_score_truncated_last_line_is_an_error_not_a_silent_drop(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY[:19] + [TWENTY[19][:20]], tail="")
    assert _score(path) == 2
    assert f"{path}: line 20: not valid JSON" in capsys.readouterr().err
    assert not path.with_suffix(".metrics.json").exists()


def test_eval_score_truncated_last_line_is_a_counted_skip_on_request(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY[:19] + [TWENTY[19][:20]], tail="")
    assert _score(path, "--skip-bad-lines") == 0
    document = _accuracy(path)
    assert document["n"] == 19 and document["skipped_bad_lines"] == 1
    assert f"tinyrs: skipped {path}: line 20" in capsys.readouterr().err


def test_eval_score_duplicate_index_is_an_error(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY + [TWENTY[3]])
    assert _score(path) == 2
    assert f"{path}: line 21: index 3 repeats line 4" in capsys.readouterr().err
    assert _score(path, "--skip-bad-lines") == 2  # which of the two is right cannot be told: never a skip


def test_eval_score_non_json_line_names_file_and_line(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY[:5] + ["not json at all"] + TWENTY[5:])
    assert _score(path) == 2
    assert f"{path}: line 6: not valid JSON" in capsys.readouterr().err


def test_eval_score_json_list_line_names_file_and_line(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY[:5] + ['[{"index": 5, "pred": "forest", "answer": "forest"}]'])
    assert _score(path) == 2
    assert f"{path}: line 6: expected a JSON object, got list" in capsys.readouterr().err


def test_eval_score_invalid_utf8_names_file_and_line(tmp_path, capsys):
    path = _predictions(tmp_path, TWENTY)
    path.write_bytes(path.read_bytes().replace(b'"beach"', b'"b\xe9ach"', 1))
    assert _score(path) == 2
    assert f"{path}: line 1: not valid UTF-8" in capsys.readouterr().err


def test_eval_score_empty_file_is_an_error_naming_the_file(tmp_path, capsys):
    path = tmp_path / "cls_aid.jsonl"
    path.write_text("", encoding="utf-8")
    assert _score(path) == 2
    assert f"{path}: no predictions" in capsys.readouterr().err
    assert not path.with_suffix(".metrics.json").exists()


def test_resume_drops_only_a_torn_last_line_and_says_so(tmp_path, capsys):
    from tinyrs.eval.runner import resume_rows

    predictions, run = tmp_path / "t.jsonl", tmp_path / "t.run.json"
    resume_rows(predictions, run, "abc")
    predictions.write_text("".join(line + "\n" for line in TWENTY[:3]) + TWENTY[3][:15], encoding="utf-8")
    assert [row["index"] for row in resume_rows(predictions, run, "abc")] == [0, 1, 2]
    assert f"{predictions}: line 4" in capsys.readouterr().err
    assert predictions.read_text(encoding="utf-8") == "".join(line + "\n" for line in TWENTY[:3])


def test_resume_refuses_a_finished_bad_last_line(tmp_path):
    """A last line that ends in a newline was written whole: bad content there is not a killed writer."""
    from tinyrs.eval.runner import resume_rows

    predictions, run = tmp_path / "t.jsonl", tmp_path / "t.run.json"
    resume_rows(predictions, run, "abc")
    predictions.write_text(TWENTY[0] + "\n" + '["not", "a", "row"]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: expected a JSON object"):
        resume_rows(predictions, run, "abc")


def test_resume_keeps_a_torn_multibyte_tail_out(tmp_path):
    """A writer killed inside a multi-byte character leaves invalid UTF-8 in the last line: a torn line too."""
    from tinyrs.eval.runner import resume_rows

    predictions, run = tmp_path / "t.jsonl", tmp_path / "t.run.json"
    resume_rows(predictions, run, "abc")
    tail = json.dumps({"index": 1, "pred": "forêt"}, ensure_ascii=False).encode()
    predictions.write_bytes((TWENTY[0] + "\n").encode() + tail[:tail.index(b"\xc3") + 1])
    assert [row["index"] for row in resume_rows(predictions, run, "abc")] == [0]


def test_rewards_score_invalid_utf8_names_file_and_line(tmp_path):
    """The reader `eval score` now shares: `rewards score` raised a bare UnicodeDecodeError here."""
    path = tmp_path / "completions.jsonl"
    path.write_bytes(b'{"completion": "yes", "answer": "y\xe9s", "answer_type": "1"}\n')
    args = build_parser().parse_args(["rewards", "score", "--config", str(CONFIG), "--input", str(path),
                                      "--output", str(tmp_path / "out.jsonl")])
    with pytest.raises(DataError, match=rf"{path}: line 1: not valid UTF-8"):
        args.func(args)


# --- 10. config errors name the file and the key, under Snakemake too ----------------------------------------

def _snakemake_dry_run(cwd: Path, *args: str, bin_dirs: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """``snakemake -n`` of this repository's workflow, with ``cwd`` as its working directory."""
    path = os.pathsep.join([*map(str, bin_dirs), str(Path(sys.executable).parent), os.environ["PATH"]])
    env = dict(os.environ, PATH=path, PYTHONPATH=str(ROOT))  # this worktree's tinyrs, whatever the cwd
    return subprocess.run(["timeout", "-k", "10", "120", sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "-s", str(ROOT / "Snakefile"), *args], cwd=cwd, env=env, capture_output=True, text=True)


def _overlay(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_snakemake_unknown_key_in_overlay_names_the_overlay_not_config(tmp_path):
    overlay = _overlay(tmp_path, "grpo_defaults: {num_generation: 8}\n")
    result = _snakemake_dry_run(ROOT, "--configfile", str(CONFIG), str(overlay), "--config", f"workdir={tmp_path}/w")
    assert result.returncode == 2
    assert f"{overlay}: unknown key 'grpo_defaults.num_generation'" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr and 'File "' not in result.stderr


def test_snakemake_yaml_syntax_error_in_config_yaml_names_the_file(tmp_path):
    _overlay(tmp_path, "grpo: {beta: [1,\n", name="config.yaml")
    result = _snakemake_dry_run(tmp_path)
    assert result.returncode == 2
    assert "tinyrs: config.yaml: not valid YAML" in result.stderr
    assert "not valid JSON or YAML" not in result.stdout + result.stderr


def test_snakemake_top_level_list_in_config_yaml_names_the_file(tmp_path):
    _overlay(tmp_path, "- workdir\n- work\n", name="config.yaml")
    result = _snakemake_dry_run(tmp_path)
    assert result.returncode == 2
    assert "tinyrs: config.yaml: the top level must be a mapping, got list" in result.stderr


def test_snakemake_missing_config_yaml_with_an_overlay_names_the_file(tmp_path):
    """Snakemake skips a missing ``configfile:`` silently when --configfile is given; config.yaml is the recipe."""
    overlay = _overlay(tmp_path, "workdir: w\n")
    result = _snakemake_dry_run(tmp_path, "--configfile", str(overlay))
    assert result.returncode == 2
    assert "tinyrs: config file config.yaml does not exist" in result.stderr


def _tinyrs_run(*args: str) -> subprocess.CompletedProcess:
    """``tinyrs run ARGS`` from the repository root (config.yaml there), as a user types it."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    return subprocess.run(["timeout", "-k", "10", "120", sys.executable, "-m", "tinyrs.cli", "run", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("text, message", [("grpo: {beta: [1,\n", "not valid YAML"),
                                           ("- a\n", "the top level must be a mapping, got list")])
def test_overlay_yaml_errors_under_snakemake_are_named_by_tinyrs_run(tmp_path, text, message):
    """Snakemake parses --configfile overlays before the Snakefile runs, and its message names no file (the
    first assertion shows it); ``tinyrs run`` checks them first, names the file, and never starts snakemake."""
    overlay = _overlay(tmp_path, text)
    plain = _snakemake_dry_run(ROOT, "--configfile", str(overlay))
    assert plain.returncode != 0 and str(overlay) not in plain.stdout + plain.stderr
    result = _tinyrs_run("--profile", "profiles/demo", "--configfile", str(overlay), "-n")
    assert result.returncode == 2
    assert result.stderr.startswith(f"tinyrs: {overlay}: {message}")
    assert "Traceback" not in result.stderr and "Building DAG" not in result.stdout + result.stderr


def test_missing_overlay_under_snakemake_is_named_by_tinyrs_run_without_a_traceback(tmp_path):
    missing = tmp_path / "site.yaml"
    plain = _snakemake_dry_run(ROOT, "--configfile", str(missing))
    assert "Traceback" in plain.stdout + plain.stderr   # Snakemake's own open() of the file
    result = _tinyrs_run("--profile", "profiles/demo", "--configfile", str(missing), "-n")
    assert (result.returncode, result.stderr) == (2, f"tinyrs: config file {missing} does not exist\n")


def test_tinyrs_run_checks_a_profiles_overlays_and_then_is_snakemake(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    overlay = _overlay(tmp_path, "stages: {sft: {max_stepz: 3}}\n")
    (profile / "config.yaml").write_text(f"configfile: [config.yaml, {overlay}]\ncores: 1\n", encoding="utf-8")
    result = _tinyrs_run("--profile", str(profile), "-n")
    assert result.returncode == 2
    assert f"{overlay}: unknown key 'stages.sft.max_stepz'" in result.stderr
    # valid files: the same arguments reach snakemake, and so does its exit status
    good = _overlay(tmp_path, f"workdir: {tmp_path}/w\n", name="good.yaml")
    (profile / "config.yaml").write_text(f"configfile: [config.yaml, profiles/demo/overrides.yaml, {good}]\n"
                                         "cores: 1\n", encoding="utf-8")
    result = _tinyrs_run("--profile", str(profile), "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    assert "demo_world" in result.stdout and "report" in result.stdout
    assert _tinyrs_run("--profile", str(profile), "-n", "no_such_target").returncode == 1


MOVED = [("grpo: {beta: 0.1}\n",
          "`grpo` was renamed: put these settings under `grpo_defaults` (all GRPO stages) or `stages.grpo`"),
         ("resources: {account: proj42}\n",
          "`resources.account` moved to the site profile: set `slurm_account` under `default-resources` in "
          "profiles/<site>/config.yaml")]


@pytest.mark.parametrize("text, message", MOVED)
def test_config_check_says_where_a_moved_key_went(tmp_path, text, message):
    overlay = _overlay(tmp_path, text)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "tinyrs.cli", "config", "check", "--config", str(CONFIG),
                             "--config", str(overlay)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert f"{overlay}: {message}" in result.stderr
    assert "unknown key" not in result.stderr


@pytest.mark.parametrize("text, message", MOVED)
def test_tinyrs_run_says_where_a_moved_key_went(tmp_path, text, message):
    overlay = _overlay(tmp_path, text)
    result = _tinyrs_run("--profile", "profiles/demo", "--configfile", str(overlay), "-n")
    assert result.returncode == 2
    assert f"{overlay}: {message}" in result.stderr
    assert "Building DAG" not in result.stdout + result.stderr


def test_snakemake_global_batch_not_divisible_by_per_device_batch_is_a_config_error(tmp_path):
    overlay = _overlay(tmp_path, "train_defaults: {global_batch_size: 100}\n")
    result = _snakemake_dry_run(ROOT, "--configfile", str(CONFIG), str(overlay), "--config", f"workdir={tmp_path}/w")
    assert result.returncode == 2
    assert (f"{overlay}: key 'train_defaults.global_batch_size': 100 is not a multiple of per_device_batch_size 16 "
            f"x world size 1 of stage 'sft'") in result.stderr


def test_snakemake_global_batch_is_checked_against_the_jobs_world_size(tmp_path):
    """In containers (profiles/slurm) the sft job runs on 1 node x 4 GPUs: 96 = 16 x 6 is no multiple of 16 x 4."""
    overlay = _overlay(tmp_path, "train_defaults: {global_batch_size: 96}\n")
    args = ["--configfile", str(CONFIG), str(overlay), "--config", f"workdir={tmp_path}/w"]
    assert _snakemake_dry_run(ROOT, *args).returncode == 0  # the demo and local runs: one process
    result = _snakemake_dry_run(ROOT, "--sdm", "apptainer", *args, bin_dirs=(ROOT / "tests" / "slurm" / "bin",))
    assert result.returncode == 2
    assert ("key 'train_defaults.global_batch_size': 96 is not a multiple of per_device_batch_size 16 x world size 4 "
            "of stage 'sft' (GPUs per node x nodes of resources.jobs.sft)") in result.stderr


def test_stage_world_sizes_follow_the_jobs_only_in_containers():
    from tinyrs.config import load_config, stage_world_sizes

    config = load_config([CONFIG])
    config["resources"]["jobs"]["cot"].update(nodes=2, gpus_per_node=8)
    assert stage_world_sizes(config, distributed=True) == {"pretrain": 4, "sft": 4, "cot": 16, "grpo": 16}
    assert stage_world_sizes(config, distributed=False) == {"pretrain": 1, "sft": 1, "cot": 1, "grpo": 1}


# --- 11. the judge's key goes only over https (or loopback) and only from an *_API_KEY variable --------------

JUDGE = JudgeSettings(base_url=None, model="judge-model", api_key_env="OPENAI_API_KEY", timeout_s=5, max_retries=0,
                      concurrency=1, fallback="zero", allow_insecure_http=False, allowed_key_envs=[],
                      prompt_template=None)
SECRET = "sk-reliability-3f9a-never-shown"


def _judge(**changes):
    from tinyrs.grpo.rewards.judge import Judge

    return Judge(dataclasses.replace(JUDGE, **changes), backoff_s=0.01)


def test_judge_refuses_plain_http_to_a_remote_host(monkeypatch):
    from tinyrs.config import ConfigError

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with pytest.raises(ConfigError, match=r"grpo\.judge\.base_url: 'http://judge\.example\.org:8000/v1'.*"
                                          r"judge\.allow_insecure_http") as err:
        _judge(base_url="http://judge.example.org:8000/v1")
    assert SECRET not in str(err.value)


def test_judge_allows_plain_http_to_a_remote_host_with_the_flag():
    _judge(base_url="http://judge.example.org:8000/v1", allow_insecure_http=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000/v1", "http://[::1]:8000/v1",
                                 "https://judge.example.org/v1"])
def test_judge_allows_https_and_loopback_http_without_the_flag(url):
    _judge(base_url=url)


@pytest.mark.parametrize("url", ["ftp://judge.example.org/v1", "judge.example.org/v1", "https:///v1"])
def test_judge_refuses_a_base_url_that_is_not_http(url):
    from tinyrs.config import ConfigError

    with pytest.raises(ConfigError, match=r"grpo\.judge\.base_url: .* is not an http:// or https:// URL"):
        _judge(base_url=url)


def test_judge_refuses_a_key_variable_that_is_not_an_api_key(monkeypatch):
    from tinyrs.config import ConfigError

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with pytest.raises(ConfigError, match=r"grpo\.judge\.api_key_env: 'AWS_SECRET_ACCESS_KEY'.*allowed_key_envs"):
        _judge(api_key_env="AWS_SECRET_ACCESS_KEY")
    _judge(api_key_env="AWS_SECRET_ACCESS_KEY", allowed_key_envs=["AWS_SECRET_ACCESS_KEY"])


def test_config_check_names_the_file_of_an_insecure_judge(tmp_path, capsys):
    overlay = _overlay(tmp_path, "grpo_defaults: {judge: {base_url: 'http://10.0.0.7:8000/v1', api_key_env: HF_TOKEN}}\n")
    assert main(["config", "check", "--config", str(CONFIG), "--config", str(overlay)]) == 2
    err = capsys.readouterr().err
    assert f"{overlay}: key 'grpo_defaults.judge.base_url': 'http://10.0.0.7:8000/v1'" in err
    assert f"{overlay}: key 'grpo_defaults.judge.api_key_env': 'HF_TOKEN'" in err


def test_check_ready_refuses_an_insecure_judge_before_training(tmp_path, monkeypatch):
    """Settings files are written from a validated config, but a hand-edited one is checked again at start-up."""
    from tinyrs.config import ConfigError, load_config, read_stage_settings, settings_text, stage_settings
    from tinyrs.grpo.rewards import check_ready

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    settings = stage_settings(load_config([CONFIG]), "grpo")
    settings["judge"]["base_url"] = "http://judge.example.org/v1"
    path = tmp_path / "grpo.json"
    path.write_text(settings_text(settings))
    settings = read_stage_settings(path)
    with pytest.raises(ConfigError, match=r"grpo\.judge\.base_url") as err:
        check_ready(settings, [["0", "ships leave", "q", ""]])
    assert SECRET not in str(err.value)
