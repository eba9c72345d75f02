"""Command line: `python -m sodviz COMMAND`; `cli.parser` reads the arguments, `COMMANDS` runs them."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sodviz.cli import commands, studies
from sodviz.cli.commands import models_text, train_config
from sodviz.cli.parser import build_parser, parse_budgets

COMMANDS = {
    "predict": commands.predict,
    "models": commands.models,
    "synth": commands.synth,
    "train": commands.train,
    "evaluate": commands.evaluate,
    "benchmark": studies.benchmark,
    "erf": studies.erf,
    "errors": studies.errors,
    "acs": studies.acs,
}

__all__ = ["COMMANDS", "build_parser", "main", "models_text", "parse_budgets", "train_config"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
