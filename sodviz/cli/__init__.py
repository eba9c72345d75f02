"""Command line: `python -m sodviz COMMAND`; `cli.parser` reads the arguments, `COMMANDS` runs them."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from tqdm import tqdm

from sodviz.cli import analyze, commands, serve, studies
from sodviz.cli.commands import models_text, train_config
from sodviz.cli.parser import build_parser
from sodviz.cli.values import parse_budgets
from sodviz.notices import DataNotice

COMMANDS = {
    "predict": commands.predict,
    "report": commands.report,
    "models": commands.models,
    "synth": commands.synth,
    "train": commands.train,
    "evaluate": commands.evaluate,
    "benchmark": studies.benchmark,
    "erf": studies.erf,
    "errors": studies.errors,
    "acs": studies.acs,
    "analyze": analyze.analyze,
    "explain": studies.explain,
    "serve": serve.serve,
}

__all__ = ["COMMANDS", "build_parser", "main", "models_text", "parse_budgets", "train_config"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataNotice)
        warnings.showwarning = _notices_on_stderr(warnings.showwarning)
        try:
            COMMANDS[args.command](args)
        except (OSError, ValueError, ImportError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    return 0


def _notices_on_stderr(show_default):
    """A `warnings.showwarning` printing `DataNotice`s as one line on stderr, the rest as before."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, DataNotice):
            tqdm.write(f"notice: {message}", file=sys.stderr)  # above any progress bar
        else:
            show_default(message, category, filename, lineno, file, line)

    return show
