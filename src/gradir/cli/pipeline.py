"""The pipeline commands: run, status, init."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from gradir.cli.common import JSON, app, emit
from gradir.cli.options import Options, argument, command, option
from gradir.console import err_console
from gradir.errors import GradirError


@command(
    app, "run",
    argument("config", Optional[Path], default=None, help="Pipeline config (TOML); see `gradir init`."),
    option("collection", Optional[Path], "--collection", "-c", default=None, help="BEIR folder (overrides run.collection)."),
    option("out", Optional[Path], "--out", "-o", default=None, help="Run directory; default runs/<collection name>."),
    option("lenient", bool, "--lenient", default=False, help="Skip bad records and report them (sets run.lenient)."),
    option("dry_run", bool, "--dry-run", default=False, help="Print the plan (LLM calls, steps, time on this machine) and stop."),
    JSON,
)
def run_command(o: Options) -> None:
    """Run the pipeline: sample, generate, filter, documents, mine, grade, train, evaluate, report.

    A stage whose inputs and settings are unchanged is skipped; an interrupted run resumes.
    """
    from gradir.pipeline import PipelineConfig, load_config, run_pipeline

    if o.config is None and o.collection is None:
        raise GradirError("give a config file (see `gradir init`) or --collection")
    settings = load_config(o.config) if o.config is not None else PipelineConfig()
    if o.collection is not None:
        settings.run.collection = str(o.collection.resolve())
    settings.run.lenient = settings.run.lenient or o.lenient
    target = o.out or Path("runs") / Path(settings.collection_path()).name
    result = run_pipeline(settings, target, dry_run=o.dry_run)
    summary = result.summary()
    if o.as_json:
        emit(summary, True)
        return
    if o.dry_run:
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


@command(
    app, "status",
    argument("run_dir", Path, help="A run directory made by `gradir run`."),
    option("config", Optional[Path], "--config", default=None, help="Judge staleness against this config (default: the run's last one)."),
    JSON,
)
def status_command(o: Options) -> None:
    """Show each stage of a run as done, stale, interrupted or pending, with counts and times."""
    from gradir.pipeline import load_config, stage_statuses
    from gradir.pipeline.files import CONFIG
    from gradir.pipeline.rundir import RunDirectory

    if not (o.run_dir / CONFIG).is_file():
        raise GradirError(f"{o.run_dir}: not a gradir run directory (no {CONFIG})")
    statuses = stage_statuses(RunDirectory(o.run_dir), load_config(o.config or o.run_dir / CONFIG))
    if o.as_json:
        emit({"run": str(o.run_dir), "stages": [s.__dict__ for s in statuses]}, True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=str(o.run_dir))
    for column in ("stage", "status", "seconds", "CPU seconds", "finished", "counts"):
        table.add_column(column)
    colours = {"done": "green", "stale": "yellow", "interrupted": "red", "pending": "dim"}
    for s in statuses:
        counts = ", ".join(
            f"{k} {round(v, 4)}" for k, v in s.summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"
        )
        table.add_row(s.name, f"[{colours[s.status]}]{s.status}[/]", "" if s.seconds is None else f"{s.seconds:.1f}",
                      "" if s.cpu_seconds is None else f"{s.cpu_seconds:.1f}", s.finished or "", counts)
    Console().print(table)


@command(
    app, "init",
    argument("path", Path, default=Path("gradir.toml"), help="Config file to write."),
    option("collection", Optional[Path], "--collection", "-c", default=None, help="BEIR folder to put in run.collection."),
    option("force", bool, "--force", default=False, help="Overwrite an existing file."),
)
def init_command(o: Options) -> None:
    """Write a commented config with every setting and its default."""
    from gradir.atomic import write_text_atomic
    from gradir.pipeline import PipelineConfig, render_config

    if o.path.exists() and not o.force:
        raise GradirError(f"{o.path}: already exists (use --force to overwrite)")
    config = PipelineConfig()
    if o.collection is not None:
        if not o.collection.exists():
            raise GradirError(f"--collection: {o.collection}: no such folder")
        config.run.collection = os.path.relpath(o.collection.resolve(), o.path.resolve().parent)
    write_text_atomic(o.path, render_config(config))
    err_console.print(f"wrote {o.path}; edit it, then: gradir run {o.path}")


