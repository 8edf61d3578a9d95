"""One trainer for pretrain, SFT and CoT-SFT: a stage is configuration, not code.

Built on ``transformers.Trainer`` (DeepSpeed, checkpoints, logging) with these changes:
per-module learning-rate groups (``create_optimizer``), skip-counting of over-long samples and of
records whose image does not decode, padding-free batches with their mRoPE positions
(``compute_loss``), length-grouped batches from manifest columns (``_get_train_sampler``), tokens/s
and per-group learning rates in the logs, and a signal callback so SLURM's pre-timeout
SIGUSR1/SIGTERM saves a checkpoint and exits non-zero, letting a retry resume from it. The skip
counts travel in each checkpoint (``SKIPS_FILE``), so a resumed run reports the whole run's.
"""
from __future__ import annotations

import time
from pathlib import Path

from tinyrs import chat, runtime
from tinyrs.io import read_json, write_json
from tinyrs.model.load import load_model, load_processor
from tinyrs.settings import SftSettings
from tinyrs.sft import optim
from tinyrs.sft.batching import (SampleEncoder, UnreadableImage, UnreadableImageError, collate, estimated_lengths,
                                 packed_position_ids)

SKIPS_FILE = "tinyrs_skips.json"  # in each checkpoint: the skip report so far, carried over by a resumed run
NO_SKIPS = {"skipped_too_long": 0, "skipped_unreadable_image": 0, "unreadable_images": []}


def grad_accumulation(settings: SftSettings) -> int:
    per_step = settings.per_device_batch_size * runtime.world_size()
    steps, remainder = divmod(settings.global_batch_size, per_step)
    if remainder or steps < 1:
        raise ValueError(
            f"global_batch_size {settings.global_batch_size} is not a multiple of per_device_batch_size "
            f"{settings.per_device_batch_size} x world size {runtime.world_size()}"
        )
    return steps


class ManifestDataset:
    """Index-addressed records of a Parquet manifest, encoded on access (works in dataloader workers)."""

    def __init__(self, manifest, encoder: SampleEncoder):
        self.manifest, self.encoder = manifest, encoder

    def __len__(self) -> int:
        return len(self.manifest)

    def __getitem__(self, index: int):
        record = self.manifest[index]
        try:
            return self.encoder(record)
        except UnreadableImageError as err:
            return UnreadableImage(record["index"], record["source"], err.path, err.error)

    def lengths(self) -> list[int]:
        """Estimated tokens per record, each image counted at the most visual tokens the pixel limit allows."""
        image_processor = self.encoder.processor.image_processor
        pixels_per_token = (image_processor.patch_size * image_processor.merge_size) ** 2
        return estimated_lengths(self.manifest, image_processor.size["longest_edge"] // pixels_per_token)


def length_grouped_sampler(lengths: list[int], group_size: int, seed: int):
    """transformers' ``LengthGroupedSampler`` reseeded from (seed, epoch): its own generator would
    draw from the global RNG, so a resumed run would not see the batches the interrupted one did."""
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self):
            self.generator.manual_seed(seed + self.epoch)
            return super().__iter__()

    return EpochSeededLengthGroupedSampler(group_size, lengths=lengths, generator=torch.Generator())


class UnreadableImages:
    """Samples skipped for an image that does not decode: every skip counted, each record named once."""

    def __init__(self):
        self.skipped = 0
        self.records: dict[int, UnreadableImage] = {}

    def add(self, skips: list[UnreadableImage]) -> None:
        for skip in skips:
            self.skipped += 1
            if skip.index not in self.records:
                self.records[skip.index] = skip
                print(f"tinyrs: skipped record {skip.index} ({skip.source}): image {skip.path} does not decode: "
                      f"{skip.error}", flush=True)


class ThroughputMeter:
    """Real (unpadded) tokens per second between two training log lines, summed over all ranks."""

    def __init__(self):
        self.tokens = 0
        self.since: float | None = None  # the clock starts with the first batch, not at model loading

    def add(self, tokens: int) -> None:
        if self.since is None:
            self.since = time.perf_counter()
        self.tokens += tokens

    def take(self, gather) -> float:
        """Tokens/s since the last call; ``gather`` sums a per-rank count over ranks (a collective)."""
        now = time.perf_counter()
        total = gather(self.tokens)
        rate = total / max(now - (self.since or now), 1e-9)
        self.tokens, self.since = 0, now
        return rate


def make_trainer_class():
    from transformers import Trainer

    class TinyRSTrainer(runtime.resumable(Trainer)):
        """Trainer with per-module LR groups and counted skips of over-long samples and unreadable images."""

        skipped_too_long = 0
        unreadable: UnreadableImages
        throughput: ThroughputMeter
        carried_skips = NO_SKIPS  # the skip report of the checkpoint this run resumed from

        def train(self, resume_from_checkpoint=None, **kwargs):
            if resume_from_checkpoint:
                self.carried_skips = read_json(Path(resume_from_checkpoint) / SKIPS_FILE)
            return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

        def create_optimizer(self, model=None):
            if self.optimizer is None:
                s = self.tinyrs_settings
                groups = optim.param_groups(self.model, s.learning_rate, s.vision_lr, s.merger_lr, s.weight_decay)
                optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
                kwargs.pop("lr", None)
                self.optimizer = optimizer_cls(groups, **kwargs)
            return self.optimizer

        def log(self, logs, *args, **kwargs):
            """Add each group's learning rate (``lr/vision``, ``lr/merger``, ``lr/llm``) to the training logs
            (the evidence that the per-module rates and the schedule survived DeepSpeed's initialisation),
            and ``tokens_per_second``. Training log lines are written on every rank, so gathering is safe."""
            if "loss" in logs and self.optimizer is not None:
                for group in self.optimizer.param_groups:
                    if "name" in group and not group["name"].endswith("no_decay"):
                        logs[f"lr/{group['name']}"] = group["lr"]
                logs["tokens_per_second"] = self.throughput.take(self._sum_over_ranks)
            super().log(logs, *args, **kwargs)

        def _sum_over_ranks(self, count: int) -> int:
            import torch

            if self.args.world_size == 1:
                return count
            return int(self.accelerator.reduce(torch.tensor(count, device=self.args.device), "sum").item())

        def skip_report(self) -> dict:
            """The samples skipped so far by all ranks, including those before a resume (a collective: every
            rank calls it)."""
            from dataclasses import asdict

            from accelerate.utils import gather_object

            carried = self.carried_skips
            records = {entry["index"]: entry for entry in carried["unreadable_images"]}
            live = gather_object([asdict(skip) for skip in self.unreadable.records.values()])
            records.update((entry["index"], entry) for entry in live)
            return {
                "skipped_too_long": carried["skipped_too_long"] + self._sum_over_ranks(self.skipped_too_long),
                "skipped_unreadable_image": carried["skipped_unreadable_image"]
                + self._sum_over_ranks(self.unreadable.skipped),
                "unreadable_images": [records[index] for index in sorted(records)],
            }

        def _save_checkpoint(self, model, trial):
            """The skip report goes into the checkpoint before the trainer's files (and so before its
            completion marker), so that a resumed run's model manifest counts the whole run."""
            report = self.skip_report()
            if self.args.should_save:
                write_json(self.checkpoint_folder(trial) / SKIPS_FILE, report)
            super()._save_checkpoint(model, trial)

        def _get_train_sampler(self, train_dataset=None):
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            group = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return length_grouped_sampler(dataset.lengths(), group, self.args.seed)

        def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
            self.skipped_too_long += int(inputs.pop("tinyrs_skipped", 0))
            self.unreadable.add(inputs.pop("tinyrs_unreadable", []))
            self.throughput.add(int(inputs.pop("tinyrs_tokens", 0)))
            if "input_ids" not in inputs:  # every sample of this batch was skipped
                loss = sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0
                return (loss, None) if return_outputs else loss
            if "tinyrs_sample_lengths" in inputs:
                inputs["use_cache"] = False  # with a cache, the block-causal mask is not derived from positions
                inputs["position_ids"] = packed_position_ids(
                    self.accelerator.unwrap_model(model).model, inputs["input_ids"], inputs.get("mm_token_type_ids"),
                    inputs.get("image_grid_thw"), inputs.pop("tinyrs_sample_lengths"))
            return super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)

    return TinyRSTrainer


def training_arguments(settings: SftSettings, checkpoint_dir: Path):
    """The one translation of an SFT stage's settings into transformers' ``TrainingArguments``."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        **runtime.trainer_arguments(settings, checkpoint_dir),
        per_device_train_batch_size=settings.per_device_batch_size,
        gradient_accumulation_steps=grad_accumulation(settings),
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,
        lr_scheduler_type=settings.lr_scheduler,
        tf32=settings.tf32 and torch.cuda.is_available(),
        dataloader_num_workers=settings.dataloader_workers,
        train_sampling_strategy="group_by_length" if settings.group_by_length else "random",
        use_liger_kernel=use_liger(settings),
    )


def use_liger(settings: SftSettings) -> bool:
    """Liger's Triton kernels need CUDA: off on a CPU (said once); on a GPU, an error without the package or
    with a transformers it does not work with (``preflight.liger_ready_problems``)."""
    if not settings.liger_kernel:
        return False
    import torch

    from tinyrs import preflight

    if not torch.cuda.is_available():
        print("tinyrs: liger_kernel needs CUDA; training without it")
        return False
    problems = preflight.liger_ready_problems(settings)
    if problems:
        raise preflight.PreflightError(problems)
    return True


def build_trainer(settings: SftSettings, init_model: str, manifest_path: str, checkpoint_dir: str,
                  callbacks: list):
    """The trainer of ``init_model`` on the manifest, with frozen parts, prompts and batching as configured."""
    from tinyrs.data.manifest import open_manifest

    processor = load_processor(init_model, settings.min_pixels, settings.max_pixels)
    model = load_model(init_model, attn_implementation=settings.attn_implementation, for_training=True)
    model.config.use_cache = False
    trainable = optim.apply_freezing(model, settings.freeze_llm, settings.freeze_vision_tower, settings.tune_merger)
    encoder = SampleEncoder(processor, chat.system_prompt(settings.chat, settings.system_prompt),
                            settings.max_length)
    pad_id = processor.tokenizer.pad_token_id
    trainer = make_trainer_class()(
        model=model,
        args=training_arguments(settings, Path(checkpoint_dir)),
        train_dataset=ManifestDataset(open_manifest(manifest_path), encoder),
        data_collator=lambda samples: collate(samples, pad_id, settings.padding_free),
        processing_class=processor,
        callbacks=callbacks,
    )
    trainer.tinyrs_settings = settings
    trainer.throughput = ThroughputMeter()
    trainer.unreadable = UnreadableImages()
    trainer.tinyrs_inputs = {"trainable_parameters": trainable, "data_manifest": str(manifest_path)}
    return trainer


def summarize(trainer) -> dict:
    """The model manifest's fields of an SFT-family run: trainable parameters, skips, throughput, data."""
    return {**trainer.tinyrs_inputs, **trainer.skip_report(),
            "tokens_per_second": median_logged(trainer.state.log_history, "tokens_per_second")}


def train(settings: SftSettings, init_model: str, manifest_path: str, out_dir: str, checkpoint_dir: str) -> dict:
    """Train ``init_model`` on the manifest; write an HF model directory and, last, its manifest."""
    return runtime.train_stage(build_trainer, summarize, settings, init_model, manifest_path, out_dir, checkpoint_dir)


def median_logged(log_history: list[dict], key: str) -> float | None:
    """The median of a logged figure over a run (the first log line, which includes start-up, left out)."""
    import statistics

    values = [entry[key] for entry in log_history if key in entry][1:]
    return statistics.median(values) if values else None
