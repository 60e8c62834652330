"""Commands that train: train (bi-encoder), train-reranker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from gradir.cli.common import (
    CollectionOpt,
    JsonOpt,
    LenientOpt,
    app,
    emit,
)
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.pipeline.config import TrainSection
from gradir.training_defaults import DEFAULT_THRESHOLD


def _default(name: str):
    """The ``[train]`` section's default: ``gradir train`` and ``gradir run`` train alike unless told otherwise."""
    return TrainSection.model_fields[name].default


JudgmentsOpt = Annotated[Path, typer.Option("--judgments", "-j", help="Judgments table (.parquet or .jsonl).")]
TrainOutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained model.")]
BaseModelOpt = Annotated[Optional[str], typer.Option("--model", "-m", help="Base model folder; default all-MiniLM-L6-v2.")]
EpochsOpt = Annotated[float, typer.Option("--epochs", min=0.0, help="Passes over the training set.")]
MaxStepsOpt = Annotated[int, typer.Option("--max-steps", help="Stop after this many steps (-1: no limit).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Queries per step and process.")]
LrOpt = Annotated[float, typer.Option("--lr", min=0.0, help="Peak learning rate (linear warm-up over 10%).")]
ListSizeOpt = Annotated[int, typer.Option("--list-size", min=1, help="Documents per query in each example.")]
ThresholdOpt = Annotated[int, typer.Option("--threshold", min=0, help="Lowest grade that counts as a positive; 0: half the judgments' top grade, rounded up (2 of 0-3, 1 of binary qrels).")]


def _read_query_groups(path: Path) -> dict[str, str]:
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise GradirError(f"{path}: cannot read the query groups ({error})") from None
    if not isinstance(groups, dict):
        raise GradirError(f"{path}: expected a JSON object of query id -> group")
    return {str(k): str(v) for k, v in groups.items()}


def parse_loss_options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings as loss keyword arguments: numbers where they parse, else strings."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise GradirError(f"--loss-option '{pair}': expected KEY=VALUE, e.g. form=emd")
        try:
            options[key.strip()] = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            options[key.strip()] = value
    return options
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of sampling, shuffling and initialisation.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue from the last checkpoint in OUT.")]


@app.command("train")
def train_command(
    judgments: JudgmentsOpt,
    collection: CollectionOpt,
    loss: Annotated[str, typer.Option("--loss", help="infonce, bixse, wasserstein, listwise_kl or margin_mse.")],
    out: TrainOutOpt,
    model: BaseModelOpt = None,
    epochs: EpochsOpt = _default("epochs"),
    max_steps: MaxStepsOpt = _default("max_steps"),
    batch_size: BatchOpt = _default("batch_size"),
    lr: LrOpt = _default("learning_rate"),
    list_size: ListSizeOpt = _default("list_size"),
    threshold: ThresholdOpt = _default("threshold"),
    mini_batch_size: Annotated[Optional[int], typer.Option("--mini-batch-size", min=1, help="GradCache: embed in mini-batches of this size, so a large batch fits in little memory.")] = None,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1, help="Checkpoint every this many steps.")] = _default("save_steps"),
    max_seq_length: Annotated[Optional[int], typer.Option("--max-seq-length", min=1, help="Token limit while training (the saved model keeps its own).")] = None,
    dev_split: Annotated[Optional[str], typer.Option("--dev-split", help="Evaluate the trained model on this split.")] = None,
    loss_option: Annotated[Optional[list[str]], typer.Option("--loss-option", help="KEY=VALUE passed to the loss, e.g. form=emd for wasserstein (repeatable).")] = None,
    loss_lr: Annotated[float, typer.Option("--loss-lr", min=0.0, help="Learning rate of the loss's own parameters (BiXSE scale and bias).")] = _default("loss_learning_rate"),
    validation_share: Annotated[float, typer.Option("--validation-share", min=0.0, max=0.9, help="Share of the query groups held out to choose among base, epochs and interpolations (0: none).")] = _default("validation_share"),
    validation_documents: Annotated[int, typer.Option("--validation-documents", min=10, help="Documents the validation queries search (all judged ones included).")] = _default("validation_documents"),
    query_groups: Annotated[Optional[Path], typer.Option("--query-groups", help="JSON object: query id -> group (e.g. source passage); a group is held out whole.")] = None,
    documents: Annotated[Optional[Path], typer.Option("--documents", help="Synthetic documents the judgments name besides the corpus (a corpus-format file).")] = None,
    seed: SeedOpt = 0,
    settings_file: Annotated[Optional[Path], typer.Option("--settings", hidden=True, help="Training settings as JSON (written by `gradir run` for train.launcher); replaces the options above.")] = None,
    resume: ResumeOpt = False,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a bi-encoder on graded judgments with one of gradir's losses."""
    from gradir.collections import load_collection
    from gradir.losses import LOSSES
    from gradir.training import TrainSettings, train

    if loss not in LOSSES:
        raise GradirError(f"--loss: unknown loss '{loss}' (choose from {', '.join(LOSSES)})")
    loaded = load_collection(collection, lenient=lenient)
    if settings_file is not None:
        settings = TrainSettings.read(settings_file)
    else:
        settings = _section(
            loss=loss, epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=lr,
            list_size=list_size, threshold=threshold, mini_batch_size=mini_batch_size or 0, save_steps=save_steps,
            max_seq_length=max_seq_length or 0, loss_learning_rate=loss_lr, validation_share=validation_share,
            validation_documents=validation_documents,
        ).trainer_settings(seed)
    extra = None
    if documents is not None:
        from gradir.collections import load_corpus
        from gradir.collections.problems import ProblemLog

        extra = load_corpus(documents, ProblemLog(lenient=lenient))
    result = train(judgments, loaded, loss, out, model=model, settings=settings, dev_split=dev_split, resume=resume,
                   extra_documents=extra, loss_options=parse_loss_options(loss_option or []),
                   query_groups=_read_query_groups(query_groups) if query_groups else None)
    _finish_training(result, loaded.log.summary(), as_json)


def _section(**values) -> TrainSection:
    """The options as the ``[train]`` section, validated by the same rules as a config file."""
    from pydantic import ValidationError

    try:
        return TrainSection(**values)
    except ValidationError as error:
        first = error.errors()[0]
        raise GradirError(f"--{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None


@app.command("train-reranker")
def train_reranker_command(
    judgments: JudgmentsOpt,
    collection: CollectionOpt,
    loss: Annotated[str, typer.Option("--loss", help="lce (positive vs hard negatives) or bce (graded soft labels).")],
    out: TrainOutOpt,
    model: BaseModelOpt = None,
    epochs: EpochsOpt = 1.0,
    max_steps: MaxStepsOpt = -1,
    batch_size: BatchOpt = 16,
    lr: LrOpt = 2e-5,
    list_size: ListSizeOpt = 4,
    threshold: ThresholdOpt = DEFAULT_THRESHOLD,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
    lenient: LenientOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a cross-encoder reranker on graded judgments with LCE or graded BCE."""
    from gradir.collections import load_collection
    from gradir.losses import RERANKER_LOSSES
    from gradir.training import TrainSettings, train_reranker

    if loss not in RERANKER_LOSSES:
        raise GradirError(f"--loss: unknown reranker loss '{loss}' (choose from {', '.join(RERANKER_LOSSES)})")
    loaded = load_collection(collection, lenient=lenient)
    settings = TrainSettings(epochs=epochs, max_steps=max_steps, batch_size=batch_size, learning_rate=lr,
                             list_size=list_size, threshold=threshold, seed=seed)
    result = train_reranker(judgments, loaded, loss, out, model=model, settings=settings, resume=resume)
    _finish_training(result, loaded.log.summary(), as_json)


def _finish_training(result, skipped: dict[str, int], as_json: bool) -> None:
    from gradir.training.train import is_main_process

    if not is_main_process():
        return  # one summary per run, from rank 0
    report_skipped(skipped)
    if as_json:
        emit(result.summary(), True)
    else:
        err_console.print(
            f"trained {result.loss} for {result.steps} steps in {result.seconds:.0f} s; model in {result.model_path}"
        )


