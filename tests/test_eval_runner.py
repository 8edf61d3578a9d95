"""End to end on a tiny random Qwen2-VL: predictions, metrics, resume, shards, re-scoring, the CLI."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from PIL import Image

from tinyrs.cli import eval as eval_cli
from tinyrs.config import load_config, settings_text, typed_eval_settings
from tinyrs.eval.backends.base import Backend
from tinyrs.eval.runner import Shard, merge_shards, run_eval
from tinyrs.io import DataError, read_json, read_jsonl
from tinyrs.settings import ChatSettings, EvalSettings

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "cls": {"file": "cls.json", "metric": "accuracy", "family": "classification", "prefix": "{CLS}"},
    "vg": {"file": "vg.json", "metric": "grounding", "family": "grounding", "prefix": "{VG}"},
    "lhrs": {"file": "lhrs.json", "metric": "lhrs_accuracy", "family": "lhrs", "prefix": None},
}
ROW_FIELDS = {"index", "filename", "size", "query", "answer", "pred", "parsed", "correct", "correct_lenient"}


class CountingBackend(Backend):
    """The real backend, counting the prompts it is asked to complete."""

    name = "counting"

    def __init__(self, inner: Backend):
        self.inner, self.prompts = inner, 0

    def generate(self, batch):
        self.prompts += len(batch)
        return self.inner.generate(batch)


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir) -> Path:
    """The session's tiny random Qwen2-VL (tests/conftest.py)."""
    return tiny_model_dir


@pytest.fixture(scope="module")
def settings() -> EvalSettings:
    config = load_config([ROOT / "config.yaml"])
    return replace(typed_eval_settings(config, "sft"), tasks=TASKS, batch_size=2, max_new_tokens=8, precision="fp32",
                   attn_implementation="sdpa")


@pytest.fixture(scope="module")
def transformers_backend(model_dir, settings) -> Backend:
    from tinyrs.eval.backends.transformers import TransformersBackend

    return TransformersBackend(model_dir, settings)


def _image(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 120, 60)).save(path)


def _record(image: str, question: str, answer: str, **extra) -> dict:
    return {"image": image, "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            **extra}


@pytest.fixture
def data_root(tmp_path) -> Path:
    root = tmp_path / "data"
    for i in range(5):
        if i != 2:  # record 2 names an image that does not exist
            _image(root / "cls" / f"{i}.png", (48 + 8 * i, 40))
    (root / "cls.json").write_text(json.dumps(
        [_record(f"{i}.png", "What is the scene?", "forest") for i in range(5)]))
    for i in range(3):
        _image(root / "vg" / f"{i}.jpg", (80, 60))
    (root / "vg.json").write_text(json.dumps([
        _record("0.jpg", "the roof", "[[100, 100, 500, 500]]", size=[800, 600]),
        _record("1.jpg", "the road", "[[0, 0, 1000, 200]]"),          # no size: taken from the image
        _record("2.jpg", "the lake", "no box here"),                   # unusable ground truth
    ]))
    for i in range(3):
        _image(root / "lhrs" / f"{i}.png", (64, 64))
    (root / "lhrs.json").write_text(json.dumps(
        [_record(f"{i}.png", "Which? A. x B. y", "B", type=[1, 5 + i]) for i in range(3)]))
    return root


def _run(settings, model_dir, data_root, out, backend, tasks=None, shard=Shard()):
    return run_eval(settings, model_dir, data_root, out, tasks, shard, backend=backend)


def test_run_writes_predictions_and_metrics(settings, model_dir, data_root, tmp_path, transformers_backend):
    backend = CountingBackend(transformers_backend)
    out = tmp_path / "out"
    results = _run(settings, model_dir, data_root, out, backend)
    assert backend.prompts == 4 + 2 + 3
    cls_rows = read_jsonl(out / "cls.jsonl")
    assert [row["index"] for row in cls_rows] == [0, 1, 3, 4]
    assert all(ROW_FIELDS <= set(row) for row in cls_rows)
    assert cls_rows[1]["size"] == [56, 40] and cls_rows[0]["query"] == "{CLS} What is the scene?"
    cls = read_json(out / "cls.metrics.json")
    assert cls == results["cls"]
    assert (cls["n"], cls["stage"], cls["prompt_style"], cls["backend"]) == (4, "sft", "tinyrs", "transformers")
    assert cls["skipped"] == {"image_missing": 1} and cls["skipped_records"][0]["index"] == 2
    assert set(cls["metrics"]) == {"accuracy", "accuracy_lenient"}
    assert cls["model_manifest_sha256"] is None  # the fixture model has no tinyrs manifest

    vg_rows = read_jsonl(out / "vg.jsonl")
    assert [row["size"] for row in vg_rows] == [[800, 600], [80, 60]]
    assert all({"iou", "bucket", "box"} <= set(row) for row in vg_rows)
    vg = read_json(out / "vg.metrics.json")
    assert vg["skipped"] == {"answer_without_box": 1} and vg["primary"] == "precision@0.5"
    assert {"precision@0.5_small", "precision@0.5_medium", "precision@0.5_large", "mean_iou"} <= set(vg["metrics"])

    lhrs_rows = read_jsonl(out / "lhrs.jsonl")
    assert [row["type"] for row in lhrs_rows] == [[1, 5], [1, 6], [1, 7]]
    assert read_json(out / "lhrs.metrics.json")["metrics"]["accuracy_identity"]["n"] == 3


def test_resume_after_a_torn_last_line(settings, model_dir, data_root, tmp_path, transformers_backend):
    out = tmp_path / "out"
    _run(settings, model_dir, data_root, out, CountingBackend(transformers_backend), ["cls"])
    predictions = out / "cls.jsonl"
    lines = predictions.read_text().splitlines(keepends=True)
    predictions.write_text("".join(lines[:2]) + lines[2][:25])  # killed while writing sample 3
    (out / "cls.metrics.json").unlink()

    backend = CountingBackend(transformers_backend)
    resumed = replace(settings, batch_size=3)  # a different batch size does not invalidate finished lines
    document = _run(resumed, model_dir, data_root, out, backend, ["cls"])["cls"]
    assert backend.prompts == 2  # samples 3 and 4; sample 2 has no image
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [row["index"] for row in rows] == [0, 1, 3, 4]
    assert document["n"] == 4 and document["skipped"] == {"image_missing": 1}

    again = CountingBackend(transformers_backend)
    _run(resumed, model_dir, data_root, out, again, ["cls"])
    assert again.prompts == 0


def test_resumed_rows_are_scored_by_the_current_code(settings, model_dir, data_root, tmp_path, transformers_backend):
    """Rows written by an earlier version carry its verdicts (or lack newer fields): the metrics rescore them."""
    out = tmp_path / "out"
    first = _run(settings, model_dir, data_root, out, CountingBackend(transformers_backend), ["cls"])["cls"]
    predictions = out / "cls.jsonl"
    stale = [{key: value for key, value in json.loads(line).items() if key in ("index", "filename", "size", "query",
                                                                           "answer", "pred")}
             | {"correct": 1 - int(bool(json.loads(line).get("correct")))}
             for line in predictions.read_text().splitlines()]
    predictions.write_text("".join(json.dumps(row) + "\n" for row in stale))
    (out / "cls.metrics.json").unlink()
    again = CountingBackend(transformers_backend)
    document = _run(settings, model_dir, data_root, out, again, ["cls"])["cls"]
    assert again.prompts == 0 and document["metrics"] == first["metrics"]


def test_changed_settings_start_over(settings, model_dir, data_root, tmp_path, transformers_backend):
    out = tmp_path / "out"
    _run(settings, model_dir, data_root, out, CountingBackend(transformers_backend), ["cls"])
    backend = CountingBackend(transformers_backend)
    document = _run(replace(settings, prompt_style="plain"), model_dir, data_root, out, backend, ["cls"])["cls"]
    assert backend.prompts == 4 and document["prompt_style"] == "plain"
    assert {row["query"] for row in read_jsonl(out / "cls.jsonl")} == {"What is the scene?"}


def test_shards_merge_into_the_task_files(settings, model_dir, data_root, tmp_path, transformers_backend):
    out = tmp_path / "out"
    _run(settings, model_dir, data_root, out, CountingBackend(transformers_backend), ["cls"], Shard(0, 2))
    assert (out / "cls.shard-0-of-2.metrics.json").exists() and not (out / "cls.metrics.json").exists()
    with pytest.raises(DataError, match=r"shards \['1/2'\]"):
        merge_shards("cls", out, 2)
    _run(settings, model_dir, data_root, out, CountingBackend(transformers_backend), ["cls"], Shard(1, 2))
    document = merge_shards("cls", out, 2)
    assert [row["index"] for row in read_jsonl(out / "cls.jsonl")] == [0, 1, 3, 4]
    assert document["n"] == 4 and document["skipped"] == {"image_missing": 1} and document["shards"] == 2
    assert read_json(out / "cls.metrics.json") == document


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    eval_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_run_and_rescore(settings, model_dir, data_root, tmp_path):
    settings_file = tmp_path / "eval-sft.json"
    settings_file.write_text(settings_text(settings.to_dict()))
    out = tmp_path / "out"
    assert _cli(["eval", "run", "--settings", str(settings_file), "--model", str(model_dir),
                 "--data-root", str(data_root), "--out-dir", str(out), "--tasks", "vg,lhrs"]) == 0
    assert not (out / "cls.metrics.json").exists()
    for task in ("vg", "lhrs"):
        rescored = tmp_path / f"{task}.rescored.json"
        assert _cli(["eval", "score", "--task", task, "--predictions", str(out / f"{task}.jsonl"),
                     "--settings", str(settings_file), "--output", str(rescored)]) == 0
        assert read_json(rescored)["metrics"] == read_json(out / f"{task}.metrics.json")["metrics"]
    rescored = tmp_path / "config.rescored.json"
    assert _cli(["eval", "score", "--task", "rs_vg", "--predictions", str(out / "vg.jsonl"),
                 "--config", str(ROOT / "config.yaml"), "--output", str(rescored)]) == 0
    assert read_json(rescored)["task_config"]["answer_boxes"] == "pixels"


def test_open_image_reports_missing_and_corrupt_files(tmp_path):
    from tinyrs.eval.runner import open_image

    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG not really")
    _image(tmp_path / "ok.png", (10, 6))
    assert open_image(tmp_path / "absent.png")[0] == "image_missing"
    assert open_image(tmp_path / "corrupt.png")[0] == "image_unreadable"
    image = open_image(tmp_path / "ok.png")
    assert image.mode == "RGB" and image.size == (10, 6)


def test_resume_refuses_a_broken_line_that_is_not_the_last(tmp_path):
    from tinyrs.eval.runner import resume_rows

    predictions, run = tmp_path / "t.jsonl", tmp_path / "t.run.json"
    assert resume_rows(predictions, run, "abc") == [] and read_json(run) == {"fingerprint": "abc"}
    predictions.write_text('{"index": 0}\n{"ind\n{"index": 2}\n')
    with pytest.raises(DataError, match="t.jsonl: line 2: not valid JSON"):
        resume_rows(predictions, run, "abc")


def test_rescoring_counts_rows_it_cannot_score():
    from tinyrs.eval.runner import score_predictions
    from tinyrs.eval.tasks import Task

    task = Task("vg", "vg.json", "grounding", "grounding")
    chat = ChatSettings(system_prompt="", reasoning_system_prompt="", reasoning_tag="reasoning", answer_tag="answer")
    rows = [{"index": 0, "pred": "[[0, 0, 500, 500]]", "answer": "[[0, 0, 500, 500]]", "size": [10, 10]},
            {"index": 1, "answer": "[[0, 0, 500, 500]]", "size": [10, 10]},
            {"index": 2, "pred": "[[0, 0, 500, 500]]", "answer": "[[0, 0, 500, 500]]"},
            {"index": 3, "pred": "x", "answer": "no box", "size": [10, 10]}]
    document = score_predictions(task, rows, chat)
    assert document["n"] == 1 and document["metrics"]["precision@0.5"]["value"] == 1.0
    assert document["skipped"] == {"bad_prediction_row": 1, "missing_size": 1, "answer_without_box": 1}


class RecordingBackend(CountingBackend):
    """The real backend, keeping the ``(messages, images)`` it is asked to complete."""

    def __init__(self, inner: Backend):
        super().__init__(inner)
        self.inputs = []

    def generate(self, batch):
        self.inputs.extend(batch)
        return super().generate(batch)


def test_a_two_image_record_reaches_the_model_with_its_images_in_order(settings, model_dir, tmp_path,
                                                                        transformers_backend):
    """A bi-temporal record (``image``: [before, after], one ``<image>`` each) is evaluated with both images, in the
    record's order: swapping them changes what the model is given."""
    root = tmp_path / "data"
    before, after = (30, 120, 60), (200, 40, 40)
    (root / "change").mkdir(parents=True)
    Image.new("RGB", (56, 56), before).save(root / "change" / "before.png")
    Image.new("RGB", (84, 56), after).save(root / "change" / "after.png")
    question = "<image>\n<image>\nWhere did buildings appear?"
    (root / "change.json").write_text(json.dumps([
        _record(["before.png", "after.png"], question, "[[0, 0, 500, 500]]"),
        _record(["after.png", "before.png"], question, "[[0, 0, 500, 500]]"),
    ]))
    tasks = {"change": {"file": "change.json", "metric": "detection_map", "family": "damage_detection",
                        "prefix": None}}
    backend = RecordingBackend(transformers_backend)
    document = _run(replace(settings, tasks=tasks), model_dir, root, tmp_path / "out", backend)["change"]
    assert document["n"] == 2 and document["skipped_total"] == 0
    (messages, images), (_, swapped) = backend.inputs
    assert [image.getpixel((0, 0)) for image in images] == [before, after]
    assert [image.getpixel((0, 0)) for image in swapped] == [after, before]
    user = next(message for message in messages if message["role"] == "user")
    assert [item["type"] for item in user["content"]] == ["image", "image", "text"]
    rows = read_jsonl(tmp_path / "out" / "change.jsonl")
    assert [row["filename"] for row in rows] == [["change/before.png", "change/after.png"],
                                                 ["change/after.png", "change/before.png"]]
    assert rows[0]["size"] == [56, 56] and rows[1]["size"] == [84, 56]   # no size in the record: the first image's
    processor = transformers_backend.processor
    encoded = [processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)], images=pair,
                         return_tensors="pt") for pair in (images, swapped)]
    assert int((encoded[0]["input_ids"] == processor.image_token_id).sum()) == sum(
        int(grid.prod()) // 4 for grid in encoded[0]["image_grid_thw"])
    assert not torch.equal(encoded[0]["image_grid_thw"], encoded[1]["image_grid_thw"])
    assert not torch.equal(encoded[0]["input_ids"], encoded[1]["input_ids"])
