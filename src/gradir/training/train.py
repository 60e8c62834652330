"""Training on graded judgments: bi-encoders with gradir's losses, rerankers with LCE or graded BCE.

Training runs through sentence-transformers' trainers (so ``torchrun`` / ``accelerate
launch`` give multi-GPU data parallelism, and the bi-encoder losses gather in-batch
negatives across processes); checkpoints go to ``OUT/.checkpoints`` and ``resume=True``
continues from the last one. The finished model is a plain sentence-transformers folder
in ``OUT`` with a model card (data, loss, settings, metrics) and ``training.json``.

Before training, a share of the queries is held out as a validation set scored by the
teacher's grades (:mod:`gradir.training.validation`); the base model, each epoch and
their weight interpolations are scored on it and the best is the output
(:mod:`gradir.training.selection`), so a run never hands back a model worse than the
base on its own validation queries.

Every loss gets sentence-transformers' no-duplicates batch sampler: two rows of one
query (or one document twice) are never in one batch, so no row's positive is another
row's in-batch negative. Loss parameters (BiXSE's scale and bias, MarginMSE's scale)
train at their own learning rate and are saved with each checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from gradir.atomic import atomic_write, write_text_atomic
from gradir.console import err_console, progress
from gradir.collections.loader import Collection
from gradir.collections.problems import ProblemLog
from gradir.collections.records import Document
from gradir.retrieval.encoding import Encoder
from gradir.errors import GradirError
from gradir.grading.judgments import read_judgments
from gradir.losses import LOSSES, RERANKER_LOSSES, CachedLoss
from gradir.models import resolve_model_path, token_limit
from gradir.precision import resolve_precision, warn_if_emulated
from gradir.training.assemble import TrainingSet, assemble_training_set, resolve_threshold
from gradir.training.selection import (
    EpochScores, Selection, average_row, choose, rejected, rejected_sentence, snapshot, tuned_checkpoint, undecided,
    undecided_sentence, validation_source,
)
from gradir.training.validation import ValidationSet, hold_out, validation_set
from gradir.training_defaults import (
    DEFAULT_ALPHAS,
    DEFAULT_AVERAGE_CHECKPOINTS,
    DEFAULT_CONFIRM_LEVEL,
    DEFAULT_LOSS_LEARNING_RATE,
    DEFAULT_THRESHOLD,
    DEFAULT_TRAINING_PRECISION,
    DEFAULT_VALIDATE_EVERY,
    DEFAULT_VALIDATION_SHARE,
)

CHECKPOINTS = ".checkpoints"
LOSS_PARAMETERS = "loss_parameters.json"
# Parameters the loss owns (a dotless name, or one level under CachedLoss's ``loss.``); the
# model's parameters all live under ``model.``.
LOSS_PARAMETER_PATTERN = r"^(loss\.)?[^.]+$"


@dataclass
class TrainSettings:
    """What a training run is given besides its data and loss."""

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 32
    learning_rate: float = 2e-5
    list_size: int = 4
    threshold: int = DEFAULT_THRESHOLD
    seed: int = 0
    positives_per_query: int = 0  # rows per query at most (its best positives); 0: one per positive
    mini_batch_size: int | None = None  # GradCache mini-batches (bi-encoders only); None: no caching
    save_steps: int = 50
    max_seq_length: int | None = None  # token limit while training; the saved model keeps its own
    loss_learning_rate: float = DEFAULT_LOSS_LEARNING_RATE  # the loss's own parameters
    validation_share: float = DEFAULT_VALIDATION_SHARE  # of the query groups held out for selection; 0: none
    validate_every: int = DEFAULT_VALIDATE_EVERY  # also score the model every this many steps; 0: epoch ends only
    alphas: tuple[float, ...] = DEFAULT_ALPHAS  # WiSE-FT interpolation grid between base and tuned
    average_checkpoints: int = DEFAULT_AVERAGE_CHECKPOINTS  # k best checkpoints averaged as a candidate; 1: off
    confirm_level: float = DEFAULT_CONFIRM_LEVEL  # keep a tuned winner only if its gain is significant at this level; 1: off
    precision: str = DEFAULT_TRAINING_PRECISION  # auto | fp32 | bf16 (mixed precision; see gradir.precision)

    def write(self, path: Path) -> Path:
        """The settings as JSON (how ``gradir run`` hands them to ``gradir train`` under a launcher)."""
        write_text_atomic(path, json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def read(cls, path: Path) -> TrainSettings:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{**raw, "alphas": tuple(raw.get("alphas", DEFAULT_ALPHAS))})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
            raise GradirError(f"{path}: not a training settings file ({error})") from None

    def planned_steps(self, examples: int) -> int:
        """Optimiser steps the run will take: ``max_steps``, else epochs × batches (all processes together)."""
        if self.max_steps > 0:
            return self.max_steps
        batch = self.batch_size * int(os.environ.get("WORLD_SIZE", "1"))
        return max(1, math.ceil(math.ceil(examples / batch) * self.epochs))

    def trainer_arguments(self, output_dir: Path, examples: int) -> dict[str, Any]:
        # The loss is logged every step of a short run (a plot needs more than one point), every 5 at most.
        logging_steps = max(1, min(5, self.planned_steps(examples) // 20))
        mixed = resolve_precision(self.precision) == "bf16"
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
            logging_steps=logging_steps,
            dataloader_pin_memory=_has_cuda(),
            report_to="none",
            dataloader_drop_last=False,
            disable_tqdm=True,
            bf16=mixed,
            use_cpu=mixed and not _has_cuda(),  # transformers accepts bf16 without a GPU only so
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
    training_set: dict[str, int] = field(default_factory=dict)
    loss_parameters: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    loss_settings: dict[str, Any] = field(default_factory=dict)  # the loss's get_config_dict()

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


def _fit(trainer, out: Path, resume: bool, loss_module=None) -> tuple[float, int, int]:
    """Train (from the last checkpoint if asked), keep the loss log; return the last loss, steps and first step."""
    resume_from = _last_checkpoint(out / CHECKPOINTS) if resume else None
    first_step = int(resume_from.rsplit("-", 1)[-1]) if resume_from else 0
    if loss_module is not None:
        _restore_loss_parameters(loss_module, resume_from)
        trainer.add_callback(_loss_parameter_callback(loss_module))
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


def _documents(collection: Collection, extra_documents: Mapping[str, Document] | None) -> dict[str, Document]:
    return {**collection.documents, **(extra_documents or {})}


def _training_data(judgments: list, documents: Mapping[str, Document], layout: str, settings: TrainSettings) -> TrainingSet:
    """The judgments in the layout a loss needs; the batch is clipped to a smaller training set."""
    training = assemble_training_set(
        judgments, documents, layout,
        list_size=settings.list_size, threshold=settings.threshold, seed=settings.seed,
        positives_per_query=settings.positives_per_query,
    )
    rows = training.dataset.num_rows
    if rows < settings.batch_size:
        err_console.print(f"[yellow]the training set has {rows} rows, fewer than the batch size "
                          f"{settings.batch_size}: training with batches of {rows}[/yellow]")
        settings.batch_size = rows
    return training


def _loss_parameter_values(loss_module) -> dict[str, list[float] | float]:
    import re

    return {
        name: (p.detach().cpu().tolist())
        for name, p in loss_module.named_parameters()
        if re.search(LOSS_PARAMETER_PATTERN, name)
    }


def _loss_parameter_callback(loss_module):
    """Saves the loss's own parameters into each checkpoint (the trainer saves only the model's)."""
    from transformers import TrainerCallback

    class SaveLossParameters(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if is_main_process():
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir():
                    write_text_atomic(folder / LOSS_PARAMETERS, json.dumps(_loss_parameter_values(loss_module)) + "\n")

    return SaveLossParameters()


def _restore_loss_parameters(loss_module, checkpoint: str | None) -> None:
    import torch

    if checkpoint is None or not (Path(checkpoint) / LOSS_PARAMETERS).is_file():
        return
    saved = json.loads((Path(checkpoint) / LOSS_PARAMETERS).read_text())
    with torch.no_grad():
        for name, parameter in loss_module.named_parameters():
            if name in saved:
                parameter.copy_(torch.tensor(saved[name], dtype=parameter.dtype))


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
    query_groups: Mapping[str, str] | None = None,
    validation_judgments: Path | str | None = None,
) -> TrainResult:
    """Train a bi-encoder with one of :data:`gradir.losses.LOSSES`.

    ``extra_documents`` are documents outside the corpus that judgments may name
    (synthetic documents written for a level or for balancing the grades).
    ``query_groups`` maps a query to the group it is held out with (a synthetic query's
    source passage), so that no passage is on both sides of the validation split.
    ``validation_judgments``: a judgments file for the validation set instead of a held-out
    share of ``judgments_path`` (``settings.validation_share`` is then not used); its queries
    must not be among the training queries.
    """
    if loss not in LOSSES:
        raise GradirError(f"unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import (
        BatchSamplers,
        SentenceTransformerTrainingArguments,
    )

    settings = settings or TrainSettings()
    warn_if_emulated(settings.precision)
    # training.json records the precision used (auto resolved); the caller's settings stay as given
    settings = replace(settings, precision=resolve_precision(settings.precision))
    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model_path(model)
    documents = _documents(collection, extra_documents)
    judgments = read_judgments(judgments_path, set(documents), collection.log)
    settings.threshold = resolve_threshold(judgments, settings.threshold)
    if validation_judgments is None:
        judgments, validation = hold_out(
            judgments, documents, share=settings.validation_share, groups=query_groups,
            threshold=settings.threshold, seed=settings.seed,
        )
    else:
        validation = _given_validation_set(validation_judgments, judgments, documents, settings.threshold, collection.log)
    training = _training_data(judgments, documents, loss, settings)
    student = SentenceTransformer(str(base_path), local_files_only=True)
    loss_module = _loss(loss, student, loss_options)
    loss_module.use_judgments(training.judged)
    selection = epochs = base_state = None
    model_limit = student.max_seq_length
    if validation is not None:
        base_state = snapshot(student)
        selection = Selection(validation.describe(), validation.score(student))
        epochs = EpochScores(student, validation, selection, every=settings.validate_every, output_limit=model_limit,
                             keep=settings.average_checkpoints)
    trained_loss = CachedLoss(loss_module, settings.mini_batch_size) if settings.mini_batch_size else loss_module
    with token_limit(student, settings.max_seq_length or None):
        args = SentenceTransformerTrainingArguments(
            **settings.trainer_arguments(out / CHECKPOINTS, len(training.dataset)),
            batch_sampler=BatchSamplers.NO_DUPLICATES,
            learning_rate_mapping=_loss_learning_rates(trained_loss, settings.loss_learning_rate),
        )
        trainer = SentenceTransformerTrainer(model=student, args=args, train_dataset=training.dataset, loss=trained_loss)
        if epochs is not None:
            trainer.add_callback(epochs.callback())
        final_loss, steps, first_step = _fit(trainer, out, resume, trained_loss)
    if epochs is not None:
        epochs.score(trainer.state.epoch or 0.0, steps)  # the last model, when training ended mid-epoch
        choose(student, base_state, epochs, settings.alphas, settings.confirm_level)
        err_console.print(selection.sentence())
    _save_model(student, out)
    described = _described_settings(base_path, judgments_path, collection, settings, loss_options=loss_options or {},
                                     validation_judgments=str(validation_judgments) if validation_judgments else None)
    result = TrainResult(
        str(out), loss, training.dataset.num_rows, steps, 0.0, final_loss, described,
        resumed_from_step=first_step, training_set=training.summary(),
        loss_parameters=_loss_parameter_values(loss_module),
        selection=selection.summary() if selection is not None else {},
        loss_settings=loss_module.get_config_dict(),
    )
    if dev_split:
        from gradir.evaluation import evaluate

        result.dev_metrics = evaluate(collection, split=dev_split, encoder=Encoder(out, show_progress=False)).metrics
    result.seconds = time.perf_counter() - start
    _write_model_card(out, result)
    if is_main_process():
        write_text_atomic(out / "training.json", json.dumps(result.summary(), indent=2) + "\n")
    return result


def _given_validation_set(path: Path | str, training: list, documents: Mapping[str, Document], threshold: int,
                          log: ProblemLog) -> ValidationSet:
    """The validation set read from its own judgments file; a query trained on too is a clear error."""
    judgments = read_judgments(path, set(documents), log)
    shared = sorted({j.query_id for j in judgments} & {j.query_id for j in training})
    if shared:
        raise GradirError(f"{path}: {len(shared)} validation queries are also training queries "
                          f"(first: '{shared[0]}'); a query cannot be both")
    validation = validation_set(judgments, documents, threshold=threshold)
    if validation is None:
        raise GradirError(f"{path}: no validation query has a judged document of grade {threshold} or more: nothing to score")
    return replace(validation, file=str(path))


def _loss(name: str, student, options: dict[str, Any] | None):
    """The loss module, with its options checked against what the loss accepts."""
    import inspect

    cls = LOSSES[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]
    unknown = sorted(set(options or {}) - set(accepted))
    if unknown:
        raise GradirError(f"loss option(s) {', '.join(unknown)} not known to {name} (it takes {', '.join(accepted) or 'none'})")
    return cls(student, **(options or {}))


def _loss_learning_rates(loss_module, learning_rate: float) -> dict[str, float]:
    import re

    owned = [n for n, p in loss_module.named_parameters() if p.requires_grad and re.search(LOSS_PARAMETER_PATTERN, n)]
    return {LOSS_PARAMETER_PATTERN: learning_rate} if owned else {}


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
    warn_if_emulated(settings.precision)
    settings = replace(settings, precision=resolve_precision(settings.precision))
    start = time.perf_counter()
    out = Path(out)
    base_path = resolve_model_path(model)
    # LCE contrasts a positive with lower-grade negatives (the binarised layout); BCE uses soft labels.
    documents = _documents(collection, None)
    judgments = read_judgments(judgments_path, set(documents), collection.log)
    dataset = _training_data(judgments, documents, "infonce" if loss == "lce" else "bixse", settings).dataset
    # The reranker losses take labels only, not the ids after them: LCE the positive first, BCE the K soft labels.
    labels = (
        [[1.0] + [0.0] * (settings.list_size - 1)] * len(dataset)
        if loss == "lce"
        else [row[: settings.list_size] for row in dataset["label"]]
    )
    dataset = dataset.remove_columns("label").add_column("label", labels)
    reranker = CrossEncoder(str(base_path), num_labels=1, local_files_only=True)
    args = CrossEncoderTrainingArguments(**settings.trainer_arguments(out / CHECKPOINTS, len(dataset)))
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


def _selection_section(selection: dict[str, Any]) -> str:
    """The model card's account of the validation set, the curve and the choice."""
    if not selection:
        return "No validation set (too few query groups, or `validation_share` 0): the last model is the output.\n\n"
    held = selection["validation"]
    rows = [f"| base | | {selection['base']:.4f} |"]
    tuned = tuned_checkpoint(selection)
    rows += [f"| epoch {e['epoch']:g} (step {e['step']}) | {'θ_tuned' if e['step'] == tuned else ''} | {e['ndcg@10']:.4f} |"
             for e in selection["epochs"]]
    if (averaged := average_row(selection)) is not None:
        rows.append(f"| {averaged[0]} | {averaged[1]} | {averaged[2]:.4f} |")
    rows += [f"| interpolation | α = {c['alpha']:g} | {c['ndcg@10']:.4f} |" for c in selection["interpolation"]]
    source = (validation_source(held) if held.get("file")
              else f"{held['queries']} held-out synthetic queries ({held['groups']} groups, {held['judged_pairs']} teacher-graded pairs)")
    return (
        f"Validation: {source}, each ranking its own graded documents; nDCG@10.\n\n"
        f"| model | weights | nDCG@10 |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"Output: **{selection['output']}** (α = {selection['alpha']:g}, θ = (1 − α)·θ_base + α·θ_tuned), "
        f"validation nDCG@10 {selection['score']:.4f}.\n\n"
        + (f"Undecided: {undecided_sentence(selection)}\n\n" if undecided(selection) else "")
        + (f"Not confirmed: {rejected_sentence(selection)}.\n\n" if rejected(selection) else "")
    )


def _write_model_card(out: Path, result: TrainResult) -> None:
    if not is_main_process():
        return
    card = out / "README.md"
    existing = card.read_text(encoding="utf-8") if card.is_file() else ""
    settings = "\n".join(f"| {k} | `{v}` |" for k, v in result.settings.items())
    metrics = "\n".join(f"| {k} | {v:.4f} |" for k, v in result.dev_metrics.items()) or "| (no dev split given) | |"
    loss_settings = ", ".join(f"{k}={v!r}" for k, v in result.loss_settings.items())
    learned = ", ".join(f"{k} = {v:.4g}" for k, v in result.loss_parameters.items() if isinstance(v, float))
    section = (
        "\n\n## Trained with gradir\n\n"
        f"Loss `{result.loss}`{f' ({loss_settings})' if loss_settings else ''} on {result.examples} training "
        f"examples for {result.steps} steps ({result.seconds:.0f} s); last logged loss {result.final_loss:.4f}."
        f"{f' Loss parameters at the end: {learned}.' if learned else ''}\n\n"
        f"| setting | value |\n|---|---|\n{settings}\n\n"
        f"{_selection_section(result.selection)}"
        f"Dev metrics:\n\n| metric | value |\n|---|---|\n{metrics}\n"
    )
    write_text_atomic(card, existing.split("\n\n## Trained with gradir")[0] + section)
