"""Benchmark the cohort simulator: simulate N patients x D days and write the data folder.

Prints median wall seconds (simulate, write, total), events, events per second and the
peak resident memory of the process. Usage:
python benchmarks/simulate.py [--patients 100000] [--days 120] [--repeats 1] [--seed S]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from simulation.settings import SimulationConfig
from simulation import simulate
from simulation.output import write_cohort


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="patients to simulate (default 100,000)")
    parser.add_argument("--days", type=int, default=120, help="days of observation (default 120)")
    parser.add_argument("--repeats", type=int, default=1, help="runs to take the median over (default 1)")
    parser.add_argument("--seed", type=int, default=SimulationConfig().seed, help="random seed")
    args = parser.parse_args(argv)

    config = replace(SimulationConfig(), n_patients=args.patients, days=args.days, seed=args.seed)
    sim_s, write_s, n_events = [], [], 0
    for _ in range(max(args.repeats, 1)):
        with tempfile.TemporaryDirectory(prefix="lapse-sim-bench-") as tmp:
            start = time.perf_counter()
            cohort = simulate(config)
            mid = time.perf_counter()
            write_cohort(cohort, config, Path(tmp) / "cohort")
            end = time.perf_counter()
            n_events = len(cohort.events)
            del cohort
        sim_s.append(mid - start)
        write_s.append(end - mid)

    simulate_s, written_s = statistics.median(sim_s), statistics.median(write_s)
    total = simulate_s + written_s
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate {args.patients:,} patients x {args.days} days, median of {len(sim_s)} run(s)")
    print(f"  simulate        {simulate_s:8.2f} s")
    print(f"  write           {written_s:8.2f} s")
    print(f"  total           {total:8.2f} s")
    print(f"  events          {n_events:,} ({n_events / args.patients:.0f} per patient)")
    print(f"  events/second   {n_events / total:,.0f} (simulate and write)")
    print(f"  peak RSS        {peak_mib:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
