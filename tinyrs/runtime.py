"""What every training stage needs around its trainer: launch environment, DeepSpeed configs,
signal-driven checkpointing, resume, and writing the finished model directory. ``train_stage`` is the one
skeleton every stage kind (``tinyrs.kinds``) runs its trainer in.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from tinyrs.io import MANIFEST_NAME, sha256_file, sha256_json, write_json, write_manifest, write_text_if_changed
from tinyrs.paths import FETCHED, TRAIN_LOG
from tinyrs.provenance import provenance
from tinyrs.settings import StageSettings

INTERRUPTED_EXIT = 75  # EX_TEMPFAIL: the checkpoint is saved, a rerun resumes from it


def check_deepspeed_config(path: str | Path) -> dict:
    """Load a DeepSpeed JSON config and refuse blocks that would override our optimizer or schedule.

    The reference's config carried ``optimizer``/``scheduler`` blocks, so DeepSpeed built one single-LR
    optimizer and a WarmupLR schedule, silently dropping the per-module learning rates and the cosine
    schedule (REFERENCE.md §3.3).
    """
    config = json.loads(Path(path).read_text(encoding="utf-8"))
    for block in ("optimizer", "scheduler"):
        if block in config:
            raise ValueError(
                f"{path}: DeepSpeed config has a '{block}' block; it would replace the per-module learning "
                "rates and the schedule with DeepSpeed's own. Remove it."
            )
    return config


def deepspeed_config_path(value: str | None) -> str | None:
    """A name of a shipped config (zero2, zero3, zero3_offload) or a path to one."""
    if value is None:
        return None
    path = Path(value)
    if not path.exists():
        path = Path(__file__).resolve().parent / "deepspeed" / f"{value}.json"
    if not path.exists():
        raise FileNotFoundError(f"DeepSpeed config '{value}' is neither a file nor one of tinyrs/deepspeed/*.json")
    check_deepspeed_config(path)
    return str(path)


def trainer_arguments(settings: StageSettings, checkpoint_dir: Path) -> dict:
    """The ``TrainingArguments`` both trainers (SFT family and GRPO) take from their settings alike.

    Every name must be a field of each image's transformers (5.19 for GRPO, 5.23 for SFT):
    ``activation_checkpointing`` exists only from 5.23, so the switch goes by ``gradient_checkpointing``,
    which 5.17-5.23 all accept (REFERENCE.md §11).
    """
    import torch

    from tinyrs.model.load import effective_precision

    return {
        "output_dir": str(checkpoint_dir),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps,
        "learning_rate": settings.learning_rate,
        "bf16": effective_precision(settings.precision) == "bf16",
        "gradient_checkpointing": settings.gradient_checkpointing,
        "deepspeed": deepspeed_config_path(settings.deepspeed),
        "logging_steps": settings.logging_steps,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "save_total_limit": settings.save_total_limit,
        "report_to": settings.report_to or "none",
        "seed": settings.seed,
        "data_seed": settings.seed,
        "remove_unused_columns": False,
        "use_cpu": not torch.cuda.is_available(),
    }


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


class StopOnSignal:
    """Install handlers for SIGUSR1/SIGTERM that ask the trainer to checkpoint and stop."""

    def __init__(self) -> None:
        self.received: int | None = None
        for signum in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame) -> None:
        self.received = signum

    def callback(self):
        from transformers import TrainerCallback

        stopper = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if stopper.received is not None:
                    control.should_save = True
                    control.should_training_stop = True
                return control

        return _Callback()


def run_fingerprint(settings: dict, *inputs: str | Path) -> str:
    """What a checkpoint belongs to: the stage's settings and its inputs.

    An input file is hashed; an input directory by its completion marker (a model's manifest, a
    fetched dataset's ``.complete``), which changes whenever the directory is rewritten.
    """
    parts = [sha256_json(settings)]
    for item in inputs:
        path = Path(item)
        markers = [path / MANIFEST_NAME, path / FETCHED] if path.is_dir() else [path]
        found = next((m for m in markers if m.is_file()), None)
        parts.append(sha256_file(found) if found else str(item))
    return sha256_json(parts)


CHECKPOINT_COMPLETE = "tinyrs_checkpoint_complete.json"


def _checkpoints(checkpoint_dir: Path) -> list[Path]:
    """The ``checkpoint-N`` folders, oldest step first."""
    from transformers.trainer_utils import sort_checkpoints

    return [Path(path) for path in sort_checkpoints(str(checkpoint_dir))]


def mark_checkpoint_complete(checkpoint: str | Path, step: int) -> None:
    """Written last, after every file of the checkpoint: a folder without it was torn by a kill while saving."""
    write_json(Path(checkpoint) / CHECKPOINT_COMPLETE, {"global_step": step})


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / CHECKPOINT_COMPLETE).is_file()


def _remove(checkpoint: Path) -> None:
    """Every rank of a distributed run calls ``last_checkpoint``: another may be removing the same folder."""
    shutil.rmtree(checkpoint, ignore_errors=True)


def last_checkpoint(checkpoint_dir: str | Path, fingerprint: str) -> str | None:
    """The newest complete checkpoint of this same run, or None.

    Checkpoints written under other settings or inputs are removed rather than resumed: after a
    config change, resuming would silently continue the old run. Torn checkpoints (no completion
    marker: the process was killed while saving) are named and removed, so that neither resuming
    nor transformers' rotation of old checkpoints takes them for real ones.
    """
    checkpoint_dir = Path(checkpoint_dir)
    marker = checkpoint_dir / "run_fingerprint.txt"
    if checkpoint_dir.exists() and (not marker.exists() or marker.read_text().strip() != fingerprint):
        stale = _checkpoints(checkpoint_dir)
        if stale:
            print(f"tinyrs: settings or inputs changed; discarding {len(stale)} old checkpoint(s) in {checkpoint_dir}",
                  flush=True)
        for path in stale:
            _remove(path)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    write_text_if_changed(marker, fingerprint + "\n")
    complete = []
    for path in _checkpoints(checkpoint_dir):
        if is_complete(path):
            complete.append(path)
        else:
            print(f"tinyrs: {path} is incomplete (no {CHECKPOINT_COMPLETE}: killed while saving); removing it",
                  flush=True)
            _remove(path)
    if not complete:
        return None
    print(f"tinyrs: resuming from {complete[-1]}", flush=True)
    return str(complete[-1])


def load_checkpoint_weights(model, checkpoint: str | Path) -> None:
    """Load a checkpoint's weights into ``model`` in place.

    ``Trainer._load_from_checkpoint`` (transformers 5) reads the safetensors file with
    ``load_state_dict(strict=False)``; for Qwen2-VL the file holds the legacy key names that only
    ``from_pretrained`` converts, so nothing matched and a resumed run silently restarted from the
    initial weights. ``from_pretrained`` applies the conversion; every key must then match.
    """
    loaded = type(model).from_pretrained(str(checkpoint), dtype=next(model.parameters()).dtype)
    model.load_state_dict(loaded.state_dict(), strict=True)


def resumable(trainer_cls):
    """``trainer_cls`` with checkpoint weights loaded by ``load_checkpoint_weights`` (DeepSpeed keeps its own)
    and each checkpoint marked complete once every process has written its part (see ``last_checkpoint``)."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class Resumable(trainer_cls):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            if self.is_deepspeed_enabled:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            load_checkpoint_weights(model or self.model, resume_from_checkpoint)
            return None

        def _save_checkpoint(self, model, trial):
            super()._save_checkpoint(model, trial)
            self.accelerator.wait_for_everyone()  # DeepSpeed: every rank writes its own optimizer shards
            if self.args.should_save:
                mark_checkpoint_complete(self.checkpoint_folder(trial), self.state.global_step)

        def checkpoint_folder(self, trial) -> Path:
            """The folder ``Trainer._save_checkpoint`` writes at the current step."""
            return Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"

    Resumable.__name__ = Resumable.__qualname__ = trainer_cls.__name__
    return Resumable


def exit_if_interrupted(stopper: StopOnSignal, checkpoint_dir: str | Path) -> None:
    if stopper.received is not None:
        print(f"tinyrs: signal {stopper.received} received; checkpoint saved in {checkpoint_dir}; rerun to resume",
              file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT)


def train_stage(build, summarize, settings: StageSettings, init_model: str, data: str, out_dir: str,
                checkpoint_dir: str) -> dict:
    """Run one stage: build its trainer, resume from the newest complete checkpoint of this same run, train,
    checkpoint and exit on SIGUSR1/SIGTERM (``INTERRUPTED_EXIT``), else save the model with its manifest.

    ``build(settings, init_model, data, checkpoint_dir, callbacks)`` makes the kind's trainer (a ``resumable``
    transformers trainer with ``processing_class`` and ``callbacks``); ``summarize(trainer)`` gives the kind's own
    fields of the model manifest. Returns the manifest's summary (empty on ranks other than 0).
    """
    started = time.time()
    stopper = StopOnSignal()
    trainer = build(settings, init_model, data, checkpoint_dir, [stopper.callback()])
    resume = last_checkpoint(checkpoint_dir, run_fingerprint(settings.to_dict(), init_model, data))
    result = trainer.train(resume_from_checkpoint=resume)
    exit_if_interrupted(stopper, checkpoint_dir)
    return save_outputs(trainer, trainer.processing_class, out_dir, settings.to_dict(), started, stage=settings.stage,
                        train_loss=result.training_loss, resumed_from=resume, init_model=str(init_model),
                        **summarize(trainer))


def save_outputs(trainer, processor, out_dir: str | Path, settings: dict, started: float, **summary) -> dict:
    """Save the model, processor and logs, then the completion manifest (last); drop the resume points.

    Checkpoints exist to resume an unfinished run. Once the model directory is complete they are
    removed, so that a forced rerun (``--forcerun``) trains again instead of resuming at the end.
    Every rank returns only once rank 0 has finished (``leave_together``).
    """
    trainer.save_model(str(out_dir))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out_dir))
        trainer.model.generation_config.save_pretrained(str(out_dir))
        write_json(Path(out_dir) / TRAIN_LOG, trainer.state.log_history)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        summary = {"steps": trainer.state.global_step, "final_loss": losses[-1] if losses else None, **summary}
        write_manifest(out_dir, **summary, config_sha256=sha256_json(settings),
                       wall_time_s=round(time.time() - started, 2), **provenance())
        for checkpoint in Path(trainer.args.output_dir).glob("checkpoint-*"):
            shutil.rmtree(checkpoint, ignore_errors=True)
    else:
        summary = {}
    leave_together(trainer)
    return summary


def leave_together(trainer) -> None:
    """Wait for every rank, then close the process group.

    A rank that exits while another still writes the model directory could abort at interpreter exit
    ("terminate called without an active exception": DeepSpeed's shared-memory comm threads torn down
    under a live peer), failing a finished run.
    """
    import torch.distributed as dist

    trainer.accelerator.wait_for_everyone()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
