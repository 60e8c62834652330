"""Command options declared once: config-key options take the section's default, names are unique."""

from __future__ import annotations

import click
import pytest
import typer

from gradir.cli import app
from gradir.cli.options import flatten, option
from gradir.pipeline.config import GradeSection, LLMSection, TrainSection


def _command(*path: str) -> click.Command:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    return command


def _defaults(command: click.Command) -> dict[str, object]:
    return {p.name: p.default for p in command.params}


def test_config_key_options_default_to_the_config_sections() -> None:
    train = _defaults(_command("train"))
    for option_name, field in [("epochs", "epochs"), ("max_steps", "max_steps"), ("batch_size", "batch_size"),
                               ("lr", "learning_rate"), ("list_size", "list_size"), ("threshold", "threshold"),
                               ("loss_lr", "loss_learning_rate"), ("validation_share", "validation_share"),
                               ("save_steps", "save_steps"),
                               ("validate_every", "validate_every"), ("precision", "precision")]:
        assert train[option_name] == TrainSection.model_fields[field].default, option_name
    grade = _defaults(_command("grade"))
    for field in ("samples", "balance", "budget", "retriever_weight", "bm25_weight", "concurrency", "timeout"):
        section = LLMSection if field in LLMSection.model_fields else GradeSection
        assert grade[field] == section.model_fields[field].default, field


def test_every_command_is_one_options_parameter_behind_typer() -> None:
    """Commands with many options still hand the command function one namespace."""
    import inspect

    from gradir.cli import evaluate, grade, pipeline, synthesize, train

    functions = [f for module in (evaluate, grade, pipeline, synthesize, train)
                 for name, f in vars(module).items() if name.endswith("_command")]
    assert len(functions) >= 14
    for function in functions:
        assert list(inspect.signature(function).parameters) == ["o"], function.__name__


def test_an_option_declared_twice_is_refused() -> None:
    seed = option("seed", int, "--seed", default=0)
    with pytest.raises(ValueError, match="seed"):
        flatten([seed, (option("top_k", int, "--top-k", default=1), seed)])
