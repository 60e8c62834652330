"""Training on graded judgments: bi-encoders with gradir's losses, rerankers with LCE or graded BCE.

Training runs through sentence-transformers' trainers (so ``torchrun`` / ``accelerate
launch`` give multi-GPU data parallelism, and the bi-encoder losses gather in-batch
negatives across processes); checkpoints go to ``OUT/.checkpoints`` and ``resume=True``
continues from the last one. The finished model is a plain sentence-transformers folder
in ``OUT`` with a model card (data, loss, settings, metrics) and ``training.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from gradir.atomic import atomic_write, write_text_atomic
from gradir.console import progress
from gradir.collections.loader import Collection
from gradir.collections.records import Document
from gradir.encoding import Encoder
from gradir.errors import GradirError
from gradir.judgments import read_judgments
from gradir.losses import LOSSES, RERANKER_LOSSES, CachedLoss
from gradir.models import resolve_model_path
from gradir.training.assemble import assemble_training_set

CHECKPOINTS = ".checkpoints"


@dataclass
class TrainSettings:
    """What a training run is given besides its data and loss."""

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    list_size: int = 4
    threshold: int = 1
    seed: int = 0
    mini_batch_size: int | None = None  # GradCache mini-batches (bi-encoders only); None: no caching
    save_steps: int = 50
    max_seq_length: int | None = None  # token limit while training; the saved model keeps its own

    def trainer_arguments(self, output_dir: Path) -> dict[str, Any]:
        return dict(
            output_dir=str(output_dir),
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            warmup_steps=0.1,  # a float below 1: that fraction of the steps (transformers v5)
            seed=self.seed,
            data_seed=self.seed,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=1,
            logging_steps=max(1, min(5, self.max_steps // 5)) if self.max_steps > 0 else 5,
            dataloader_pin_memory=_has_cuda(),
            report_to="none",
            dataloader_drop_last=True,
            disable_tqdm=True,
        )


def is_main_process() -> bool:
    """Rank 0 under torchrun / accelerate launch (or a plain process): the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass
class TrainResult:
    model_path: str
    loss: str
    examples: int
    steps: int
    seconds: float
    final_loss: float
    settings: dict[str, Any]
    dev_metrics: dict[str, float] = field(default_factory=dict)
    resumed_from_step: int = 0

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _last_checkpoint(directory: Path) -> str | None:
    """The newest *complete* checkpoint: the trainer writes ``trainer_state.json`` last, so a
    folder without it was cut short (a crash while saving) and is removed, not resumed from."""
    checkpoints = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    complete = []
    for checkpoint in checkpoints:
        if (checkpoint / "trainer_state.json").is_file():
            complete.append(checkpoint)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)
    return str(complete[-1]) if complete else None


def _progress_callback():
    """A trainer callback drawing gradir's progress bar (steps, elapsed, ETA) on stderr."""
    from transformers import TrainerCallback

    class TrainingProgress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.bar = progress()
            self.bar.start()
            self.task = self.bar.add_task("training", total=state.max_steps or None, completed=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            self.bar.update(self.task, completed=state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            self.bar.stop()

    return TrainingProgress()


def _fit(trainer, out: Path, resume: bool) -> tuple[float, int, int]:
    """Train (from the last checkpoint if asked), keep the loss log; return the last loss, steps and first step."""
    resume_from = _last_checkpoint(out / CHECKPOINTS) if resume else None
    first_step = int(resume_from.rsplit("-", 1)[-1]) if resume_from else 0
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the loss log goes to training_log.jsonl, not the terminal
    trainer.add_callback(_progress_callback())
    # The trainer prints its log lines on stdout; stdout is for the --json result alone.
    with contextlib.redirect_stdout(sys.stderr):
        output = trainer.train(resume_from_checkpoint=resume_from)
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    if is_main_process():
        with atomic_write(out / "training_log.jsonl") as handle:
            for entry in history:
                handle.write(json.dumps(entry) + "\n")
    final = float(history[-1]["loss"]) if history else float(output.training_loss)
    return final, trainer.state.global_step, first_step


def _training_data(
    judgments_path: Path | str, collection: Collection, layout: str, settings: TrainSettings,
    extra_documents: Mapping[str, Document] | None = None,
):
    """The judgments, validated against the corpus (and synthetic documents), in the layout a loss needs."""
    documents = {**collection.documents, **(extra_documents or {})}
    judgments = read_judgments(judgments_path, set(documents), collection.log)
    return assemble_training_set(
        judgments, documents, layout,
        list_size=settings.list_size, threshold=settings.threshold, seed=settings.seed,
    )


def _described_settings(base_path: Path, judgments_path: Path | str, collection: Collection, settings: TrainSettings, **extra) -> dict:
    return {"base_model": str(base_path), "judgments": str(judgments_path), "collection": str(collection.root),
            **extra, **asdict(settings)}


def train(
    judgments_path: Path | str,
    collection: Collection,
    loss: str,
    out: Path | str,
    *,
    model: str | Path | None = None,
    settings: TrainSettings | None = None,
    dev_split: str | None = None,
    resume: bool = False,
    loss_options: dict[str, Any] | None = None,
    extra_documents: Mapping[str, Document] | None = None,
) -> TrainResult:
    """Train a bi-encoder with one of :data:`gradir.losses.LOSSES`.

    ``extra_documents`` are documents outside the corpus that judgments may name
    (synthetic documents written for a level or for balancing the grades).
    """
    if loss not in LOSSES:
        raise GradirError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    settings = settings or TrainSettings()
    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model_path(model)
    dataset = _training_data(judgments_path, collection, loss, settings, extra_documents)
    student = SentenceTransformer(str(base_path), local_files_only=True)
    model_limit = student.max_seq_length
    if settings.max_seq_length:
        student.max_seq_length = settings.max_seq_length
    loss_module = LOSSES[loss](student, **(loss_options or {}))
    if settings.mini_batch_size:
        loss_module = CachedLoss(loss_module, settings.mini_batch_size)
    sampler = BatchSamplers.NO_DUPLICATES if loss == "infonce" else BatchSamplers.BATCH_SAMPLER
    args = SentenceTransformerTrainingArguments(**settings.trainer_arguments(out / CHECKPOINTS), batch_sampler=sampler)
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=dataset, loss=loss_module)
    final_loss, steps, first_step = _fit(trainer, out, resume)
    student.max_seq_length = model_limit
    _save_model(student, out)
    result = TrainResult(
        str(out), loss, len(dataset), steps, 0.0, final_loss,
        _described_settings(base_path, judgments_path, collection, settings, loss_options=loss_options or {}),
        resumed_from_step=first_step,
    )
    if dev_split:
        from gradir.evaluation import evaluate

        result.dev_metrics = evaluate(collection, split=dev_split, encoder=Encoder(out, show_progress=False)).metrics
    result.seconds = time.perf_counter() - start
    _write_model_card(out, result)
    if is_main_process():
        write_text_atomic(out / "training.json", json.dumps(result.summary(), indent=2) + "\n")
    return result


def train_reranker(
    judgments_path: Path | str,
    collection: Collection,
    loss: str,
    out: Path | str,
    *,
    model: str | Path | None = None,
    settings: TrainSettings | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train a cross-encoder reranker with LCE (positive vs hard negatives) or graded BCE.

    The base may be a cross-encoder, or a bi-encoder backbone (the default model) that
    gets a fresh one-logit head.
    """
    if loss not in RERANKER_LOSSES:
        raise GradirError(f"unknown reranker loss '{loss}' (choose from {', '.join(RERANKER_LOSSES)})")
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer
    from sentence_transformers.cross_encoder.training_args import CrossEncoderTrainingArguments

    settings = settings or TrainSettings()
    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model_path(model)
    # LCE contrasts a positive with lower-grade negatives (the binarised layout); BCE uses soft labels.
    dataset = _training_data(judgments_path, collection, "infonce" if loss == "lce" else "bixse", settings)
    if loss == "lce":
        dataset = dataset.add_column("label", [[1.0] + [0.0] * (settings.list_size - 1)] * len(dataset))
    reranker = CrossEncoder(str(base_path), num_labels=1, local_files_only=True)
    args = CrossEncoderTrainingArguments(**settings.trainer_arguments(out / CHECKPOINTS))
    trainer = CrossEncoderTrainer(model=reranker, args=args, train_dataset=dataset, loss=RERANKER_LOSSES[loss](reranker))
    final_loss, steps, first_step = _fit(trainer, out, resume)
    _save_model(reranker, out)
    result = TrainResult(
        str(out), loss, len(dataset), steps, time.perf_counter() - start, final_loss,
        _described_settings(base_path, judgments_path, collection, settings),
        resumed_from_step=first_step,
    )
    _write_model_card(out, result)
    if is_main_process():
        write_text_atomic(out / "training.json", json.dumps(result.summary(), indent=2) + "\n")
    return result


def _save_model(model, out: Path) -> None:
    """Save into a temporary folder, then move each file into ``out`` (the checkpoints stay); rank 0 only."""
    if not is_main_process():
        return
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(str(staging))
    for path in sorted(staging.rglob("*")):
        target = out / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)


def _write_model_card(out: Path, result: TrainResult) -> None:
    if not is_main_process():
        return
    card = out / "README.md"
    existing = card.read_text(encoding="utf-8") if card.is_file() else ""
    settings = "\n".join(f"| {k} | `{v}` |" for k, v in result.settings.items())
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in result.dev_metrics.items()) or "| (no dev split given) | |"
    section = (
        "\n\n## Trained with gradir\n\n"
        f"Loss `{result.loss}` on {result.examples} training examples for {result.steps} steps "
        f"({result.seconds:.0f} s); last logged loss {result.final_loss:.4f}.\n\n"
        f"| setting | value |\n|---|---|\n{settings}\n\n"
        f"Dev metrics:\n\n| metric | value |\n|---|---|\n{metrics}\n"
    )
    write_text_atomic(card, existing.split("\n\n## Trained with gradir")[0] + section)
