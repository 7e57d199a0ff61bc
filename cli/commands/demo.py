"""Simulate the default cohort (once), validate it, build features, train and promote a model on them, write
the engagement report, then start the risk service and its clinician page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from config import DEFAULT_PATHS, ServingConfig
from simulation.settings import SimulationConfig

NAME = "demo"


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _call(argv: list[str]) -> int:
    from cli.main import main

    code = main(argv)
    if code != 0:
        raise typer.Exit(code)
    return code


def _cohort_is_current(data_dir: Path, sim: SimulationConfig) -> bool:
    """Whether the folder holds a cohort simulated with exactly these parameters."""
    from simulation.output import cohort_meta_parameters

    meta = data_dir / DEFAULT_PATHS.meta_file
    if not meta.exists():
        return False
    return json.loads(meta.read_text()).get("parameters") == cohort_meta_parameters(sim)


def command(
    work: Annotated[Path, typer.Option("--work", metavar="DIR", help="folder for everything the demo writes")]
    = DEFAULT_PATHS.work,
    port: Annotated[int, typer.Option("--port", help="port for the service")] = ServingConfig().port,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="stop after the report instead of serving")] = False,
) -> int:
    """Run the demo chain; returns the exit code."""

    sim = SimulationConfig()
    data_dir = work / "demo-data"
    features_file = work / "demo-features.parquet"

    _step(f"Cohort: {sim.n_patients:,} simulated patients over {sim.days} days (seed {sim.seed})")
    if _cohort_is_current(data_dir, sim):
        print(f"reusing {data_dir}")
    else:
        _call(["simulate", "--patients", str(sim.n_patients), "--days", str(sim.days), "--seed", str(sim.seed),
               "--out", str(data_dir), "--force"])

    _step("Validate against the data contract")
    _call(["validate", "--data", str(data_dir)])

    _step("Point-in-time features and dropout labels")
    _call(["features", "--data", str(data_dir), "--out", str(features_file)])

    _step("Train (MLflow-tracked) on those features and promote through the gates")
    _call(["train", "--data", str(data_dir), "--features", str(features_file)])
    _call(["promote"])

    _step("Engagement report")
    _call(["report", "--data", str(data_dir), "--out", str(work / "demo-report")])
    print(f"report: {work / 'demo-report' / 'report.html'}")

    if no_serve:
        return 0
    _step("Risk service")
    from serving.demo import serve_demo

    return serve_demo(data_dir, work, port)
