"""The pipeline commands: run, status, init."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from gradir.cli.common import (
    JsonOpt,
    app,
    emit,
)
from gradir.console import err_console
from gradir.errors import GradirError


@app.command("run")
def run_command(
    config: Annotated[Optional[Path], typer.Argument(help="Pipeline config (TOML); see `gradir init`.")] = None,
    collection: Annotated[Optional[Path], typer.Option("--collection", "-c", help="BEIR folder (overrides run.collection).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory; default runs/<collection name>.")] = None,
    lenient: Annotated[bool, typer.Option("--lenient", help="Skip bad records and report them (sets run.lenient).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (LLM calls, steps, time on this machine) and stop.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the pipeline: sample, generate, filter, documents, mine, grade, train, evaluate, report.

    A stage whose inputs and settings are unchanged is skipped; an interrupted run resumes.
    """
    from gradir.pipeline import PipelineConfig, load_config, run_pipeline

    if config is None and collection is None:
        raise GradirError("give a config file (see `gradir init`) or --collection")
    settings = load_config(config) if config is not None else PipelineConfig()
    if collection is not None:
        settings.run.collection = str(collection.resolve())
    settings.run.lenient = settings.run.lenient or lenient
    target = out or Path("runs") / Path(settings.collection_path()).name
    result = run_pipeline(settings, target, dry_run=dry_run)
    summary = result.summary()
    if as_json:
        emit(summary, True)
        return
    if dry_run:
        return
    evaluation = summary["stages"]["evaluate"]["summary"]
    _print_base_tuned(evaluation)
    err_console.print(f"report: {target / 'report.html'} (and report.md)")


def _print_base_tuned(evaluation: dict) -> None:
    from rich.table import Table

    table = Table(title=f"base against tuned ({evaluation['queries']} queries)")
    for column in ("metric", "base", "tuned", "Δ"):
        table.add_column(column)
    for metric in ("ndcg@10", "recall@100"):
        base, tuned = evaluation[metric]["base"], evaluation[metric]["tuned"]
        table.add_row(metric, f"{base:.4f}", f"{tuned:.4f}", f"{tuned - base:+.4f}")
    from rich.console import Console

    Console().print(table)
    err_console.print(f"paired randomisation test on nDCG@10: p = {evaluation['p_ndcg@10']:.4f}")


@app.command("status")
def status_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory made by `gradir run`.")],
    config: Annotated[Optional[Path], typer.Option("--config", help="Judge staleness against this config (default: the run's last one).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each stage of a run as done, stale, interrupted or pending, with counts and times."""
    from gradir.pipeline import load_config, stage_statuses
    from gradir.pipeline.files import CONFIG
    from gradir.pipeline.rundir import RunDirectory

    if not (run_dir / CONFIG).is_file():
        raise GradirError(f"{run_dir}: not a gradir run directory (no {CONFIG})")
    statuses = stage_statuses(RunDirectory(run_dir), load_config(config or run_dir / CONFIG))
    if as_json:
        emit({"run": str(run_dir), "stages": [s.__dict__ for s in statuses]}, True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(run_dir))
    for column in ("stage", "status", "seconds", "finished", "counts"):
        table.add_column(column)
    colours = {"done": "green", "stale": "yellow", "interrupted": "red", "pending": "dim"}
    for s in statuses:
        counts = ", ".join(
            f"{k} {round(v, 4)}" for k, v in s.summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"
        )
        table.add_row(s.name, f"[{colours[s.status]}]{s.status}[/]", "" if s.seconds is None else f"{s.seconds:.1f}",
                      s.finished or "", counts)
    Console().print(table)


@app.command("init")
def init_command(
    path: Annotated[Path, typer.Argument(help="Config file to write.")] = Path("gradir.toml"),
    collection: Annotated[Optional[Path], typer.Option("--collection", "-c", help="BEIR folder to put in run.collection.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config with every setting and its default."""
    from gradir.atomic import write_text_atomic
    from gradir.pipeline import PipelineConfig, render_config

    if path.exists() and not force:
        raise GradirError(f"{path}: already exists (use --force to overwrite)")
    config = PipelineConfig()
    if collection is not None:
        if not collection.exists():
            raise GradirError(f"--collection: {collection}: no such folder")
        config.run.collection = os.path.relpath(collection.resolve(), path.resolve().parent)
    write_text_atomic(path, render_config(config))
    err_console.print(f"wrote {path}; edit it, then: gradir run {path}")


