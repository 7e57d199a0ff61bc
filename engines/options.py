"""Command-line options that pick the engine of the heavy commands (features, train, score-batch)."""

from __future__ import annotations

import argparse

from cli.arguments import positive_int
from config import ScaleOutConfig


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Add --engine {local,dask}, --scheduler ADDRESS and --workers N to a sub-command's parser."""
    workers = ScaleOutConfig().workers
    parser.add_argument("--engine", choices=("local", "dask"), default="local",
                        help="local: this process, tables in memory (default); dask: patient partitions on a "
                        "Dask cluster (needs the lapse[dask] extra and Parquet tables)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="Dask scheduler to connect to (e.g. tcp://scheduler:8786); without it a local "
                        "cluster is started and closed")
    parser.add_argument("--workers", type=positive_int, default=workers, metavar="N",
                        help=f"worker processes of the local cluster (default: {workers})")
