"""Commands that train: train (bi-encoder), train-reranker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from gradir.cli.common import COLLECTION, JSON, LENIENT, SEED, app, emit, section_from
from gradir.cli.options import Opt, Options, command, option, section_option
from gradir.collections.problems import report_skipped
from gradir.console import err_console
from gradir.errors import GradirError
from gradir.pipeline.config import TrainSection
from gradir.training_defaults import DEFAULT_THRESHOLD

JUDGMENTS = option("judgments", Path, "--judgments", "-j", help="Judgments table (.parquet or .jsonl).")
TRAINED_MODEL = option("out", Path, "--out", "-o", help="Folder of the trained model.")
BASE_MODEL = option("model", Optional[str], "--model", "-m", default=None, help="Base model folder; default all-MiniLM-L6-v2.")
RESUME = option("resume", bool, "--resume", default=False, help="Continue from the last checkpoint in OUT.")
EPOCHS_HELP = "Passes over the training set."
MAX_STEPS_HELP = "Stop after this many steps (-1: no limit)."
BATCH_HELP = "Queries per step and process."
LR_HELP = "Peak learning rate (linear warm-up over 10%)."
LIST_SIZE_HELP = "Documents per query in each example."
THRESHOLD_HELP = ("Lowest grade that counts as a positive; 0: half the judgments' top grade, rounded up "
                  "(2 of 0-3, 1 of binary qrels).")


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


def _train_option(field: str, kind: type, flag: str, **typer_settings: object) -> Opt:
    """A ``[train]`` key as an option of ``gradir train``: the same default, so both train alike unless told otherwise."""
    return section_option(TrainSection, field, kind, flag, **typer_settings)


@command(
    app, "train", JUDGMENTS, COLLECTION,
    option("loss", str, "--loss", help="infonce, bixse, wasserstein, listwise_kl or margin_mse."),
    TRAINED_MODEL, BASE_MODEL,
    _train_option("epochs", float, "--epochs", min=0.0, help=EPOCHS_HELP),
    _train_option("max_steps", int, "--max-steps", help=MAX_STEPS_HELP),
    _train_option("batch_size", int, "--batch-size", min=1, help=BATCH_HELP),
    _train_option("learning_rate", float, "--lr", name="lr", min=0.0, help=LR_HELP),
    _train_option("list_size", int, "--list-size", min=1, help=LIST_SIZE_HELP),
    _train_option("positives_per_query", int, "--positives-per-query", min=0,
                  help="Training rows per query at most, its highest grades first (0: one per positive)."),
    _train_option("threshold", int, "--threshold", min=0, help=THRESHOLD_HELP),
    option("mini_batch_size", Optional[int], "--mini-batch-size", default=None, min=1,
           help="GradCache: embed in mini-batches of this size, so a large batch fits in little memory."),
    _train_option("save_steps", int, "--save-steps", min=1, help="Checkpoint every this many steps."),
    _train_option("precision", str, "--precision",
                  help="fp32, bf16 (bfloat16 mixed precision: CPUs with AMX, GPUs from Ampere on) or auto (bf16 where native)."),
    option("max_seq_length", Optional[int], "--max-seq-length", default=None, min=1,
           help="Token limit while training (the saved model keeps its own)."),
    option("dev_split", Optional[str], "--dev-split", default=None, help="Evaluate the trained model on this split."),
    option("loss_option", Optional[list[str]], "--loss-option", default=None,
           help="KEY=VALUE passed to the loss, e.g. form=emd for wasserstein (repeatable)."),
    _train_option("loss_learning_rate", float, "--loss-lr", name="loss_lr", min=0.0,
                  help="Learning rate of the loss's own parameters (BiXSE scale and bias)."),
    _train_option("validation_share", float, "--validation-share", min=0.0, max=0.9,
                  help="Share of the query groups held out to choose among base, epochs and interpolations (0: none)."),
    _train_option("validate_every", int, "--validate-every", min=0,
                  help="Also score the model on the validation queries every this many steps (0: epoch ends only)."),
    _train_option("average_checkpoints", int, "--average-checkpoints", min=1,
                  help="Also score the average of the k best-scoring checkpoints as a candidate (1: off)."),
    _train_option("confirm_level", float, "--confirm-level", min=0.0, max=1.0,
                  help="Hand back a model that beat the base on the validation queries only if its gain is significant "
                       "at this level (one-sided paired randomisation test; 1: off)."),
    option("validation_judgments", Optional[Path], "--validation-judgments", default=None,
           help="Judgments of other queries to choose with instead of a held-out share (e.g. a few labelled queries)."),
    option("query_groups", Optional[Path], "--query-groups", default=None,
           help="JSON object: query id -> group (e.g. source passage); a group is held out whole, drawn among "
                "all the groups in it (as the pipeline draws them before grading)."),
    option("documents", Optional[Path], "--documents", default=None,
           help="Synthetic documents the judgments name besides the corpus (a corpus-format file)."),
    SEED,
    option("settings_file", Optional[Path], "--settings", default=None, hidden=True,
           help="Training settings as JSON (written by `gradir run` for train.launcher); replaces the options above."),
    RESUME, LENIENT, JSON,
)
def train_command(o: Options) -> None:
    """Train a bi-encoder on graded judgments with one of gradir's losses."""
    from gradir.collections import load_collection
    from gradir.losses import LOSSES
    from gradir.training import TrainSettings, train

    if o.loss not in LOSSES:
        raise GradirError(f"--loss: unknown loss '{o.loss}' (choose from {', '.join(LOSSES)})")
    loaded = load_collection(o.collection, lenient=o.lenient)
    if o.settings_file is not None:
        settings = TrainSettings.read(o.settings_file)
    else:
        settings = section_from(
            TrainSection,
            loss=o.loss, epochs=o.epochs, max_steps=o.max_steps, batch_size=o.batch_size, learning_rate=o.lr,
            list_size=o.list_size, threshold=o.threshold, mini_batch_size=o.mini_batch_size or 0,
            save_steps=o.save_steps, max_seq_length=o.max_seq_length or 0, loss_learning_rate=o.loss_lr,
            validation_share=o.validation_share, validate_every=o.validate_every, precision=o.precision,
            average_checkpoints=o.average_checkpoints, positives_per_query=o.positives_per_query,
            confirm_level=o.confirm_level,
        ).trainer_settings(o.seed)
    extra = None
    if o.documents is not None:
        from gradir.collections import load_corpus
        from gradir.collections.problems import ProblemLog

        extra = load_corpus(o.documents, ProblemLog(lenient=o.lenient))
    result = train(o.judgments, loaded, o.loss, o.out, model=o.model, settings=settings, dev_split=o.dev_split,
                   resume=o.resume, extra_documents=extra, loss_options=parse_loss_options(o.loss_option or []),
                   query_groups=_read_query_groups(o.query_groups) if o.query_groups else None,
                   validation_judgments=o.validation_judgments)
    _finish_training(result, loaded.log.summary(), o.as_json)


@command(
    app, "train-reranker", JUDGMENTS, COLLECTION,
    option("loss", str, "--loss", help="lce (positive vs hard negatives) or bce (graded soft labels)."),
    TRAINED_MODEL, BASE_MODEL,
    option("epochs", float, "--epochs", default=1.0, min=0.0, help=EPOCHS_HELP),
    option("max_steps", int, "--max-steps", default=-1, help=MAX_STEPS_HELP),
    option("batch_size", int, "--batch-size", default=16, min=1, help=BATCH_HELP),
    option("lr", float, "--lr", default=2e-5, min=0.0, help=LR_HELP),
    option("list_size", int, "--list-size", default=4, min=1, help=LIST_SIZE_HELP),
    option("threshold", int, "--threshold", default=DEFAULT_THRESHOLD, min=0, help=THRESHOLD_HELP),
    SEED, RESUME, LENIENT, JSON,
)
def train_reranker_command(o: Options) -> None:
    """Train a cross-encoder reranker on graded judgments with LCE or graded BCE."""
    from gradir.collections import load_collection
    from gradir.losses import RERANKER_LOSSES
    from gradir.training import TrainSettings, train_reranker

    if o.loss not in RERANKER_LOSSES:
        raise GradirError(f"--loss: unknown reranker loss '{o.loss}' (choose from {', '.join(RERANKER_LOSSES)})")
    loaded = load_collection(o.collection, lenient=o.lenient)
    settings = TrainSettings(epochs=o.epochs, max_steps=o.max_steps, batch_size=o.batch_size, learning_rate=o.lr,
                             list_size=o.list_size, threshold=o.threshold, seed=o.seed)
    result = train_reranker(o.judgments, loaded, o.loss, o.out, model=o.model, settings=settings, resume=o.resume)
    _finish_training(result, loaded.log.summary(), o.as_json)


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


