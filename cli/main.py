"""The `lapse` command line: one entry point, one sub-command per job."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from cli import commands


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every command module in cli.commands."""
    parser = argparse.ArgumentParser(prog="lapse", description="Dropout risk for digital mental health programs.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"cli.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the sub-command named on the command line and return its exit code."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
