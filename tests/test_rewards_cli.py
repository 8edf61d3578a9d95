"""``tinyrs rewards score`` on a hand-written file of saved completions (tests/data/rewards_completions.jsonl).

Each line of the data file carries ``expected_total``, computed by hand with config.yaml's rewards
(format weight 1; type "1" closed, type "2" box IoU; ``reward`` lines: that reward alone).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from judge_server import JudgeServer

from tinyrs.cli import rewards as rewards_cli
from tinyrs.config import ConfigError
from tinyrs.io import DataError, read_jsonl

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config.yaml"
DATA = ROOT / "tests" / "data" / "rewards_completions.jsonl"
KEY_ENV = "TINYRS_TEST_CLI_JUDGE_API_KEY"


def run_score(*argv: str) -> int:
    """Parse and run like ``tinyrs rewards score ...`` (only this family registered)."""
    parser = argparse.ArgumentParser(prog="tinyrs")
    rewards_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["rewards", "score", *argv])
    return args.func(args)


def check_scored(output: Path) -> list[dict]:
    inputs, scored = read_jsonl(DATA), read_jsonl(output)
    assert len(scored) == len(inputs)
    for source, line in zip(inputs, scored):
        assert {k: v for k, v in line.items() if k != "rewards"} == source  # every input field kept
        assert line["rewards"]["total"] == pytest.approx(source["expected_total"]), source["id"]
    return scored


def test_scores_the_hand_written_file(tmp_path, capsys):
    output = tmp_path / "scored.jsonl"
    assert run_score("--config", str(CONFIG), "--input", str(DATA), "--output", str(output)) == 0
    scored = {line["id"]: line["rewards"] for line in check_scored(output)}
    assert scored["box-type"] == pytest.approx({"format": 1.0, "box_iou": 1 / 7, "total": 1 + 1 / 7})
    assert scored["recall-task"] == {"format": 0.0, "recall": 0.5, "total": 0.5}
    summary = json.loads(capsys.readouterr().out)
    assert summary["scored"] == 7 and summary["skipped_bad_lines"] == 0 and summary["format/count"] == 7


def test_scores_through_the_installed_command_line(tmp_path):
    output = tmp_path / "scored.jsonl"
    tinyrs = Path(sys.executable).parent / "tinyrs"  # the console script of pyproject.toml
    result = subprocess.run(
        [str(tinyrs), "rewards", "score", "--config", str(CONFIG), "--input", str(DATA), "--output", str(output)],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    check_scored(output)


def _with_lines(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text(DATA.read_text(encoding="utf-8") + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


BAD_LINES = ['{"completion": "yes"', '{"completion": "yes", "answer": "yes"}',
             '{"completion": "x", "answer": "x", "reward": "nonsense"}',
             '{"completion": "x", "solution": ["2", "no box here", "q"]}']


@pytest.mark.parametrize("bad, message", list(zip(BAD_LINES, ["not valid JSON", "needs field 'solution'",
                                                              "unknown reward", "field 'answer'"])))
def test_a_bad_line_is_an_error_naming_its_number(tmp_path, bad, message):
    path = _with_lines(tmp_path, bad)
    with pytest.raises(DataError, match=rf"line 8.*{message}"):
        run_score("--config", str(CONFIG), "--input", str(path), "--output", str(tmp_path / "out.jsonl"))
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_lines_can_be_counted_skips(tmp_path, capsys):
    path = _with_lines(tmp_path, *BAD_LINES)
    output = tmp_path / "out.jsonl"
    run_score("--config", str(CONFIG), "--input", str(path), "--output", str(output), "--skip-bad-lines")
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped_bad_lines"] == 4
    assert captured.err.count("tinyrs: skipped") == 4 and "line 11" in captured.err
    check_scored(output)


OPEN_LINE = json.dumps({"completion": "<reasoning>r</reasoning><answer>ships leave</answer>",
                        "solution": ["0", "ships leave", "What happens?", "aGVsbG8="]})


def _overlay(tmp_path: Path, **judge) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(json.dumps({"grpo_defaults": {"judge": {"api_key_env": KEY_ENV, **judge}}}), encoding="utf-8")
    return path


def test_open_ended_lines_need_a_usable_judge(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = _with_lines(tmp_path, OPEN_LINE)
    with pytest.raises(ConfigError, match=KEY_ENV):
        run_score("--config", str(CONFIG), "--config", str(_overlay(tmp_path)), "--input", str(path),
                  "--output", str(tmp_path / "out.jsonl"))


def test_open_ended_lines_are_counted_skips_with_skip_open_ended(tmp_path, capsys):
    overlay = tmp_path / "skip.yaml"
    overlay.write_text("grpo_defaults: {skip_open_ended: true}\n", encoding="utf-8")
    path = _with_lines(tmp_path, OPEN_LINE)
    run_score("--config", str(CONFIG), "--config", str(overlay), "--input", str(path),
              "--output", str(tmp_path / "out.jsonl"))
    assert json.loads(capsys.readouterr().out)["skipped_open_ended"] == 1
    assert len(read_jsonl(tmp_path / "out.jsonl")) == 7


def test_judged_lines_keep_the_key_secret(tmp_path, monkeypatch, capfd):
    secret = "sk-cli-test-58c1-never-written"
    monkeypatch.setenv(KEY_ENV, secret)
    path = _with_lines(tmp_path, OPEN_LINE)
    output = tmp_path / "out.jsonl"
    with JudgeServer() as server:
        overlay = _overlay(tmp_path, base_url=server.base_url)
        run_score("--config", str(CONFIG), "--config", str(overlay), "--input", str(path), "--output", str(output))
    assert server.authorizations == [f"Bearer {secret}"]
    judged = read_jsonl(output)[-1]["rewards"]
    assert judged == {"format": 1.0, "judge": 1.0, "total": 2.0}
    out, err = capfd.readouterr()
    assert json.loads(out)["judge/judged"] == 1
    assert secret not in out + err
    assert not [p.name for p in tmp_path.iterdir() if secret in p.read_text(errors="replace")]  # output included
