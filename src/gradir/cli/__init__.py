"""The ``gradir`` command.

Every command that does work prints one JSON object on stdout when given ``--json``;
progress bars and logs go to stderr. Expected mistakes (bad files, bad options) end
with a message and exit code 2, never a traceback.
"""

from __future__ import annotations

import os
import sys

from rich.markup import escape

# Each module registers its commands on the app, in the order `gradir --help` lists them.
from gradir.cli import evaluate, synthesize, grade, train, pipeline  # noqa: F401, I001
from gradir.cli.common import app
from gradir.cli.train import parse_loss_options
from gradir.console import err_console
from gradir.errors import GradirError

__all__ = ["app", "main", "parse_loss_options"]


def main() -> None:
    """Entry point: run the app, turning expected errors into a message and exit code 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # One progress bar per long step (gradir's own) and no library chatter on stderr.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except GradirError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
