"""Training a sentence-transformers bi-encoder on graded judgments with one of gradir's losses.

Training runs through ``SentenceTransformerTrainer`` (so ``torchrun`` / ``accelerate
launch`` give multi-GPU data parallelism, and the losses gather in-batch negatives across
processes); checkpoints go to ``OUT/.checkpoints`` and ``resume=True`` continues from
the last one. The finished model is a plain sentence-transformers folder in ``OUT``
with a model card (data, loss, settings, metrics) and ``training.json``.
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
from typing import Any

from gradir.atomic import write_text_atomic
from gradir.collections.loader import Collection
from gradir.encoding import Encoder
from gradir.errors import GradirError
from gradir.judgments import read_judgments
from gradir.losses import LOSSES
from gradir.models import resolve_model_path
from gradir.training.assemble import assemble_training_set

CHECKPOINTS = ".checkpoints"


@dataclass
class TrainResult:
    model_path: str
    loss: str
    examples: int
    steps: int
    seconds: float
    final_loss: float | None
    settings: dict[str, Any]
    dev_metrics: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return asdict(self)


def _last_checkpoint(directory: Path) -> str | None:
    checkpoints = sorted(directory.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def train(
    judgments_path: Path | str,
    collection: Collection,
    loss: str,
    out: Path | str,
    *,
    model: str | Path | None = None,
    epochs: float = 1.0,
    max_steps: int = -1,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    list_size: int = 4,
    threshold: int = 1,
    dev_split: str | None = None,
    seed: int = 0,
    resume: bool = False,
    loss_options: dict[str, Any] | None = None,
) -> TrainResult:
    if loss not in LOSSES:
        raise GradirError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model_path(model)
    judgments = read_judgments(judgments_path, set(collection.documents), collection.log)
    dataset = assemble_training_set(
        judgments, collection.documents, loss, list_size=list_size, threshold=threshold, seed=seed
    )
    student = SentenceTransformer(str(base_path), local_files_only=True)
    loss_module = LOSSES[loss](student, **(loss_options or {}))
    checkpoints = out / CHECKPOINTS
    settings = {
        "base_model": str(base_path),
        "judgments": str(judgments_path),
        "collection": str(collection.root),
        "loss": loss,
        "loss_options": loss_options or {},
        "epochs": epochs,
        "max_steps": max_steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "list_size": list_size,
        "threshold": threshold,
        "seed": seed,
    }
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        learning_rate=learning_rate,
        warmup_ratio=0.1,
        seed=seed,
        data_seed=seed,
        save_strategy="steps",
        save_steps=50,
        save_total_limit=1,
        logging_steps=5,
        report_to="none",
        dataloader_drop_last=True,
        batch_sampler=BatchSamplers.NO_DUPLICATES if loss == "infonce" else BatchSamplers.BATCH_SAMPLER,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=dataset, loss=loss_module)
    resume_from = _last_checkpoint(checkpoints) if resume else None
    # The trainer prints its log lines on stdout; stdout is for the --json result alone.
    with contextlib.redirect_stdout(sys.stderr):
        output = trainer.train(resume_from_checkpoint=resume_from)
    log_history = [entry for entry in trainer.state.log_history if "loss" in entry]
    _save_model(student, out)
    with open(out / "training_log.jsonl", "w", encoding="utf-8") as handle:
        for entry in log_history:
            handle.write(json.dumps(entry) + "\n")

    result = TrainResult(
        model_path=str(out),
        loss=loss,
        examples=len(dataset),
        steps=trainer.state.global_step,
        seconds=0.0,
        final_loss=float(log_history[-1]["loss"]) if log_history else float(output.training_loss),
        settings=settings,
    )
    if dev_split:
        from gradir.evaluation import evaluate

        dev = evaluate(collection, split=dev_split, encoder=Encoder(out, show_progress=False))
        result.dev_metrics = dev.metrics
    result.seconds = time.perf_counter() - start
    _write_model_card(out, result)
    write_text_atomic(out / "training.json", json.dumps(result.summary(), indent=2) + "\n")
    return result


def _save_model(student, out: Path) -> None:
    """Save into a temporary folder, then move each file into ``out`` (the checkpoints stay)."""
    staging = out / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    student.save(str(staging))
    for path in sorted(staging.rglob("*")):
        target = out / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    shutil.rmtree(staging, ignore_errors=True)


def _write_model_card(out: Path, result: TrainResult) -> None:
    card = out / "README.md"
    existing = card.read_text(encoding="utf-8") if card.is_file() else ""
    settings = "\n".join(f"| {k} | `{v}` |" for k, v in result.settings.items())
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in result.dev_metrics.items()) or "| (no dev split given) | |"
    section = (
        "\n\n## Trained with gradir\n\n"
        f"Loss `{result.loss}` on {result.examples} training examples for {result.steps} steps "
        f"({result.seconds:.0f} s); last logged loss {result.final_loss}.\n\n"
        f"| setting | value |\n|---|---|\n{settings}\n\n"
        f"Dev metrics:\n\n| metric | value |\n|---|---|\n{metrics}\n"
    )
    write_text_atomic(card, existing.split("\n\n## Trained with gradir")[0] + section)
