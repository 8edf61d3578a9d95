"""One trainer for pretrain, SFT and CoT-SFT: a stage is configuration, not code.

Built on ``transformers.Trainer`` (DeepSpeed, checkpoints, logging) with three changes:
per-module learning-rate groups (``create_optimizer``), skip-counting of over-long samples
(``compute_loss``), and a signal callback so SLURM's pre-timeout SIGUSR1/SIGTERM saves a
checkpoint and exits non-zero, letting a retry resume from it.
"""
from __future__ import annotations

import time
from pathlib import Path

from tinyrs import chat, runtime
from tinyrs.model.load import load_model, load_processor
from tinyrs.sft import optim
from tinyrs.sft.batching import SampleEncoder, collate


def grad_accumulation(settings: dict) -> int:
    per_step = settings["per_device_batch_size"] * runtime.world_size()
    steps, remainder = divmod(settings["global_batch_size"], per_step)
    if remainder or steps < 1:
        raise ValueError(
            f"global_batch_size {settings['global_batch_size']} is not a multiple of per_device_batch_size "
            f"{settings['per_device_batch_size']} x world size {runtime.world_size()}"
        )
    return steps


class ManifestDataset:
    """Index-addressed records of a Parquet manifest, encoded on access (works in dataloader workers)."""

    def __init__(self, manifest, encoder: SampleEncoder):
        self.manifest, self.encoder = manifest, encoder

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int):
        return self.encoder(self.manifest[index])


def make_trainer_class():
    from transformers import Trainer

    class TinyRSTrainer(runtime.resumable(Trainer)):
        """Trainer with per-module LR groups and counted skips of over-long samples."""

        skipped_too_long = 0

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                s = self.tinyrs_settings
                groups = optim.param_groups(self.model, s["learning_rate"], s["vision_lr"], s["merger_lr"],
                                            s["weight_decay"])
                optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                kwargs.pop("lr", None)
                self.optimizer = optimizer_cls(groups, **kwargs)
            return self.optimizer

        def log(self, logs, *args, **kwargs):
            """Add each group's learning rate (``lr/vision``, ``lr/merger``, ``lr/llm``) to the training logs:
            the evidence that the per-module rates and the schedule survived DeepSpeed's initialisation."""
            if "loss" in logs and self.optimizer is not None:
                for group in self.optimizer.param_groups:
                    if "name" in group and not group["name"].endswith("no_decay"):
                        logs[f"lr/{group['name']}"] = group["lr"]
            super().log(logs, *args, **kwargs)

        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            self.skipped_too_long += int(inputs.pop("tinyrs_skipped", 0))
            if "input_ids" not in inputs:  # every sample of this batch was too long
                loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
                return (loss, None) if return_outputs else loss
            return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)

    return TinyRSTrainer


def training_arguments(settings: dict, checkpoint_dir: Path):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        **runtime.trainer_arguments(settings, checkpoint_dir),
        per_device_train_batch_size=settings["per_device_batch_size"],
        gradient_accumulation_steps=grad_accumulation(settings),
        weight_decay=settings["weight_decay"],
        warmup_steps=settings["warmup_ratio"],
        lr_scheduler_type=settings["lr_scheduler"],
        tf32=settings["tf32"] and torch.cuda.is_available(),
        dataloader_num_workers=settings["dataloader_workers"],
    )


def train(settings: dict, init_model: str, manifest_path: str, out_dir: str, checkpoint_dir: str) -> dict:
    """Train ``init_model`` on the manifest; write an HF model directory and, last, its manifest."""
    from tinyrs.data.manifest import open_manifest

    started = time.time()
    stopper = runtime.StopOnSignal()
    processor = load_processor(init_model, settings["min_pixels"], settings["max_pixels"])
    model = load_model(init_model, settings["precision"], settings["attn_implementation"])
    model.config.use_cache = False
    trainable = optim.apply_freezing(model, settings["freeze_llm"], settings["freeze_vision_tower"],
                                     settings["tune_merger"])
    encoder = SampleEncoder(processor, chat.system_prompt(settings["chat"], settings["system_prompt"]),
                            settings["max_length"])
    pad_id = processor.tokenizer.pad_token_id
    trainer = make_trainer_class()(
        model=model,
        args=training_arguments(settings, Path(checkpoint_dir)),
        train_dataset=ManifestDataset(open_manifest(manifest_path), encoder),
        data_collator=lambda samples: collate(samples, pad_id),
        processing_class=processor,
        callbacks=[stopper.callback()],
    )
    trainer.tinyrs_settings = settings
    resume = runtime.last_checkpoint(checkpoint_dir, runtime.run_fingerprint(settings, init_model, manifest_path))
    result = trainer.train(resume_from_checkpoint=resume)
    runtime.exit_if_interrupted(stopper, checkpoint_dir)
    return runtime.save_outputs(
        trainer, processor, out_dir, settings, started,
        stage=settings["stage"], train_loss=result.training_loss, trainable_parameters=trainable,
        skipped_too_long=trainer.skipped_too_long, resumed_from=resume,
        init_model=str(init_model), data_manifest=str(manifest_path),
    )
