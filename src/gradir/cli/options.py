"""Command options declared as data, and commands that receive them as one namespace.

A command lists its options (``option``, ``argument``, ``section_option``) once;
``command`` registers it on a typer app with one typer parameter per option and calls
the command's function with a single ``Options`` namespace. So a command with twenty
options is still a one-parameter function, options shared by several commands (the LLM
connection, the encoding runtime) are one tuple, and an option that mirrors a config key
takes its default and help from the pydantic section (``section_option``): ``gradir
train --epochs`` and ``[train] epochs`` cannot drift apart.

Typer reads a command's parameters from ``inspect.signature``, which honours a
function's ``__signature__``; that is the one hook used here.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Callable, Iterable

import typer
from pydantic import BaseModel

REQUIRED = inspect.Parameter.empty


class Options(SimpleNamespace):
    """A command's parsed options, one attribute per declared option."""


@dataclass(frozen=True)
class Opt:
    """One command-line parameter: its Python name, its type with typer's Option or Argument, its default."""

    name: str
    annotation: Any
    default: Any = REQUIRED

    def parameter(self) -> inspect.Parameter:
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, annotation=self.annotation,
                                 default=self.default)


def option(name: str, kind: Any, *flags: str, default: Any = REQUIRED, **typer_settings: Any) -> Opt:
    """An option ``--flag``: ``option("top_k", int, "--top-k", default=10, min=1, help=...)``."""
    return Opt(name, Annotated[kind, typer.Option(*flags, **typer_settings)], default)


def argument(name: str, kind: Any, default: Any = REQUIRED, **typer_settings: Any) -> Opt:
    """A positional argument."""
    return Opt(name, Annotated[kind, typer.Argument(**typer_settings)], default)


def section_default(section: type[BaseModel], field: str) -> Any:
    """A config section's default for ``field``: what ``gradir run`` does unless told otherwise."""
    return section.model_fields[field].default


def section_option(section: type[BaseModel], field: str, kind: Any, *flags: str, name: str = "",
                   **typer_settings: Any) -> Opt:
    """An option that is a config key: default and help from ``section``'s field, ``name`` its Python name (default ``field``)."""
    description = section.model_fields[field].description or ""
    typer_settings.setdefault("help", description[:1].upper() + description[1:] + ".")
    return option(name or field, kind, *flags, default=section_default(section, field), **typer_settings)


def flatten(options: Iterable[Any]) -> list[Opt]:
    """Options and (nested) groups of options as one list, each name once."""
    flat: list[Opt] = []
    for item in options:
        flat.extend([item] if isinstance(item, Opt) else flatten(item))
    names = [o.name for o in flat]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"options declared twice: {', '.join(duplicated)}")
    return flat


def command(group: typer.Typer, name: str, *options: Opt | Iterable[Opt]) -> Callable:
    """Register ``function(options: Options)`` on ``group`` as command ``name`` with ``options``.

    Typer sees a function of one keyword parameter per option (its ``__signature__``), with
    the function's docstring as the command's help; the function gets them as ``Options``.
    """
    declared = flatten(options)

    def register(function: Callable[[Options], None]) -> Callable[[Options], None]:
        def entry(**values: Any) -> None:
            function(Options(**values))

        entry.__signature__ = inspect.Signature([o.parameter() for o in declared])  # type: ignore[attr-defined]
        entry.__doc__ = function.__doc__
        entry.__name__ = function.__name__
        group.command(name)(entry)
        return function

    return register
