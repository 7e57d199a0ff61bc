"""`lapse demo`: the whole chain on the embedded default cohort, ending with the service running."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from config import DEFAULT_PATHS, ServingConfig
from simulation.settings import SimulationConfig


def register(subparsers) -> None:
    """Add the `demo` sub-command."""
    parser = subparsers.add_parser(
        "demo",
        help="run the whole chain on the default simulated cohort",
        description="Simulate the default cohort (once), validate it, build features, train and promote a "
        "model, write the engagement report, then start the risk service and its clinician page.",
    )
    parser.add_argument("--work", type=Path, default=DEFAULT_PATHS.work, help="folder for everything the demo writes")
    parser.add_argument("--port", type=int, default=ServingConfig().port, help="port for the service (default %(default)s)")
    parser.add_argument("--no-serve", action="store_true", help="stop after the report instead of serving")
    parser.set_defaults(func=run)


def _step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def _call(argv: list[str]) -> None:
    from cli.main import main

    code = main(argv)
    if code != 0:
        raise SystemExit(code)


def _cohort_is_current(data_dir: Path, sim: SimulationConfig) -> bool:
    """Whether the folder holds a cohort simulated with exactly these parameters."""
    from simulation.output import cohort_meta_parameters

    meta = data_dir / "meta.json"
    if not meta.exists():
        return False
    return json.loads(meta.read_text()).get("parameters") == cohort_meta_parameters(sim)


def run(args: argparse.Namespace) -> int:
    """Run the demo chain; returns the exit code."""
    sim = SimulationConfig()
    work: Path = args.work
    data_dir = work / "demo-data"

    _step(f"Cohort: {sim.n_patients:,} simulated patients over {sim.days} days (seed {sim.seed})")
    if _cohort_is_current(data_dir, sim):
        print(f"reusing {data_dir}")
    else:
        _call(["simulate", "--patients", str(sim.n_patients), "--days", str(sim.days), "--seed", str(sim.seed),
               "--out", str(data_dir), "--force"])

    _step("Validate against the data contract")
    _call(["validate", "--data", str(data_dir)])

    _step("Point-in-time features and dropout labels")
    _call(["features", "--data", str(data_dir), "--out", str(work / "demo-features.parquet")])

    _step("Train (MLflow-tracked) and promote through the gates")
    _call(["train", "--data", str(data_dir)])
    _call(["promote"])

    _step("Engagement report")
    _call(["report", "--data", str(data_dir), "--out", str(work / "demo-report")])
    print(f"report: {work / 'demo-report' / 'report.html'}")

    if args.no_serve:
        return 0
    _step("Risk service")
    from serving.demo import serve_demo

    return serve_demo(data_dir, work, args.port)
