"""Simulate patients, their events and the true latent state, and write them as a data folder (patients,
events, truth, meta.json and lapse.toml). The same arguments give the same files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from cli.progress import job_steps
from simulation.settings import SimulationConfig

NAME = "simulate"
_DEFAULTS = SimulationConfig()


def command(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="data folder to write")],
    patients: Annotated[int, typer.Option("--patients", metavar="N", min=1, help="number of patients")]
    = _DEFAULTS.n_patients,
    days: Annotated[int, typer.Option("--days", metavar="D", min=1,
                                      help="days of observation from the study start to data_end")] = _DEFAULTS.days,
    seed: Annotated[int, typer.Option("--seed", metavar="S", help="random seed")] = _DEFAULTS.seed,
    force: Annotated[bool, typer.Option("--force", help="replace DIR if it already holds files")] = False,
) -> int:
    """Simulate and write the cohort; returns the exit code."""
    from simulation import simulate
    from simulation.output import OutputExists, write_cohort

    config = replace(_DEFAULTS, n_patients=patients, days=days, seed=seed)
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExists(f"{out}: folder is not empty (use --force to replace it)")
    with job_steps("simulate", ["simulating", "writing"]) as step:
        step(f"simulating {patients:,} patients over {days} days")
        cohort = simulate(config)
        step(f"writing {out}")
        written = write_cohort(cohort, config, out, force=force)
    events = cohort.events
    users = events["patient_id"][events["event_type"].isin(_own_types())].nunique()
    starters = int(cohort.truth["starts"].sum())
    exits = int((events["event_type"] == "discontinued").sum())
    print(
        f"Simulated {len(cohort.patients):,} patients over {config.days} days (seed {config.seed}, data_end "
        f"{cohort.data_end.isoformat()}): {len(events):,} events, {users:,} patients with any own engagement "
        f"({starters:,} drawn as starters), {exits:,} explicit discontinuations. Wrote {written}."
    )
    return 0


def _own_types() -> list[str]:
    from features.contract import OWN_ENGAGEMENT

    return [str(t) for t in OWN_ENGAGEMENT]
