"""Benchmark the WCLS causal excursion effect on simulated micro-randomized trials: bias and 95% coverage.

Each seed simulates a small support program (simulation/outreach.py) run as an MRT and estimates the
effect of support on re-engagement within 7 days, overall and by risk tier. The truth is known: the
population effect is the mean true effect over every randomized decision of every seed. Two designs:

- "p = 0.5": every due patient randomized with p = 0.5, no capacity limit;
- "capacity": risk band [0.2, 1], p = 0.5, at most 1 contact per coach and 2 per day, so the cap binds
  and the realized propensity (recorded on each decision) is below 0.5 for many (those whose chance
  would fall below 0.2 are not randomized that day).

Peers in the same run: the plain cluster sandwich (hc0) against the Mancl-DeRouen correction, and, for
the capacity design, WCLS fed the offered p = 0.5 instead of the realized propensity.
Usage: python benchmarks/effect_coverage.py [--seeds 200] [--patients 300] [--days 56]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np

from outreach.effect import estimate_effect
from outreach.errors import OutreachError
from outreach.settings import PolicySettings
from simulation.outreach import OutreachSimConfig, run_program
from simulation.settings import SimulationConfig

DESIGNS = {
    "p = 0.5": PolicySettings(policy="randomized", secret="per-trial", band_low=0.0, band_high=1.0, probability=0.5),
    "capacity": PolicySettings(policy="randomized", secret="per-trial", band_low=0.2, band_high=1.0, probability=0.5,
                               capacity_per_coach=1, capacity_per_day=2),
}


def _one_seed(design: str, seed: int, patients: int, days: int) -> dict[str, list]:
    config = OutreachSimConfig(cohort=replace(SimulationConfig(), n_patients=patients, days=days, seed=seed))
    # A fresh secret per trial, so trials share no randomization draws.
    policy = PolicySettings(**{**DESIGNS[design].model_dump(), "secret": f"bench-{seed}"})
    d = run_program(config, policy).decisions
    d = d[(d["probability"] > 0) & (d["probability"] < 1)]
    rows: dict[str, list] = defaultdict(list)
    fits = {"wcls (mancl-derouen)": (d, "mancl-derouen"), "wcls (hc0)": (d, "hc0")}
    if design == "capacity":
        fits["wcls with offered p (peer)"] = (d.assign(probability=d["offered_probability"]), "mancl-derouen")
    for name, (table, small) in fits.items():
        try:
            result = estimate_effect(table, small_sample=small)
        except OutreachError:
            continue
        rows[(name, "overall")].append((result.overall, d["true_effect"].sum(), len(d)))
        for tier in result.by_tier:
            in_tier = d["tier"] == tier.term
            rows[(name, tier.term)].append((tier, d.loc[in_tier, "true_effect"].sum(), int(in_tier.sum())))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every seed of both designs and print bias, spread and coverage per estimator and estimand."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="simulated trials per design (default 200)")
    parser.add_argument("--patients", type=int, default=300, help="patients per trial (default 300)")
    parser.add_argument("--days", type=int, default=56, help="days per trial (default 56)")
    args = parser.parse_args(argv)

    for design in DESIGNS:
        collected: dict[tuple[str, str], list] = defaultdict(list)
        seconds = []
        for seed in range(args.seeds):
            start = time.perf_counter()
            for key, values in _one_seed(design, 1000 + seed, args.patients, args.days).items():
                collected[key].extend(values)
            seconds.append(time.perf_counter() - start)
        print(f"design {design!r}: {args.seeds} trials of {args.patients} patients x {args.days} days "
              f"(median {statistics.median(seconds):.2f} s per trial)")
        print(f"  {'estimator':28s} {'estimand':10s} {'trials':>6s} {'truth':>7s} {'mean est':>8s} {'bias':>7s} "
              f"{'bias/SE':>7s} {'sd est':>7s} {'rms SE':>7s} {'cover':>6s}")
        for (name, term), values in sorted(collected.items(), key=lambda kv: (kv[0][1] != "overall", kv[0])):
            estimates = np.array([e.estimate for e, _, _ in values])
            truth = sum(s for _, s, _ in values) / sum(n for _, _, n in values)
            covered = np.mean([e.lower < truth < e.upper for e, _, _ in values])
            se = np.sqrt(np.mean([e.std_error ** 2 for e, _, _ in values]))
            bias = estimates.mean() - truth
            sd = estimates.std(ddof=1) if len(estimates) > 1 else float("nan")
            z = bias / (sd / np.sqrt(len(values))) if sd > 0 else float("nan")
            print(f"  {name:28s} {term:10s} {len(values):6d} {100 * truth:+7.2f} {100 * estimates.mean():+8.2f} "
                  f"{100 * bias:+7.2f} {z:+7.2f} {100 * sd:7.2f} {100 * se:7.2f} "
                  f"{covered:6.3f}")
        print("  (effects in percentage points of re-engagement within 7 days; bias/SE: bias over its Monte "
              "Carlo standard error; sd est: spread of the estimates; rms SE: the reported standard errors; cover: "
              "share of 95% intervals holding the truth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
