"""Benchmark trigger policies at equal coach capacity: lapses prevented per 100 contacts.

One simulated program (simulation/outreach.py), run once per policy with the same patients and the
same random draws and the same capacity (coaches x contacts per coach per day, and per day):

- risk:       highest risk first, risk >= 0.5 (risk = P(no own use in the next 7 days) without support);
- benefit:    highest expected benefit first, from a WCLS estimate (by risk tier, and days since last use)
              fitted on a separate pilot MRT cohort (another seed);
- randomized: an MRT (risk band [0.2, 1], p = 0.5, randomize then cap);
- oracle:     highest TRUE effect first: the ceiling no real policy can pass.

"Lapse prevented" = the true effect of the contact on own use within 7 days of the decision (the
simulator knows it exactly), summed over the contacts a policy made: the expected number of patients
who used the program in the week after because of the call, who would not have otherwise.
Usage: python benchmarks/triage_policies.py [--patients 3000] [--days 84] [--seed 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from outreach.effect import estimate_effect
from outreach.settings import PolicySettings
from simulation.outreach import OutreachSimConfig, TrueBenefit, run_program
from simulation.settings import SimulationConfig

MODERATORS = ("days_since_last_use",)


def main(argv: list[str] | None = None) -> int:
    """Estimate the effect on a pilot, run the four policies on one cohort and print what each prevents."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=3000, help="patients in the program (default 3,000)")
    parser.add_argument("--days", type=int, default=84, help="days of the program (default 84)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the evaluated cohort; the pilot uses seed+1")
    parser.add_argument("--per-coach", type=int, default=2, help="contacts per coach per day (default 2)")
    parser.add_argument("--coaches", type=int, default=4, help="coaches (default 4)")
    args = parser.parse_args(argv)
    per_day = args.per_coach * args.coaches

    def config(seed: int) -> OutreachSimConfig:
        cohort = replace(SimulationConfig(), n_patients=args.patients, days=args.days, seed=seed)
        return OutreachSimConfig(cohort=cohort, n_coaches=args.coaches)

    start = time.perf_counter()
    pilot_policy = PolicySettings(policy="randomized", secret="pilot", band_low=0.0, band_high=1.0, probability=0.5)
    pilot = run_program(config(args.seed + 1), pilot_policy).decisions
    estimate = estimate_effect(pilot, moderators=MODERATORS)
    print(f"pilot MRT: {estimate.n_available:,} randomized decisions, {estimate.n_units:,} patients; effect of "
          f"support on own use within 7 days: {100 * estimate.overall.estimate:+.1f} points "
          f"({100 * estimate.overall.lower:+.1f} to {100 * estimate.overall.upper:+.1f})")
    for tier in estimate.by_tier:
        print(f"  tier {tier.term:10s} {100 * tier.estimate:+6.1f} ({100 * tier.lower:+.1f} to "
              f"{100 * tier.upper:+.1f}), {tier.n_decisions:,} decisions")

    capacity = {"capacity_per_coach": args.per_coach, "capacity_per_day": per_day}
    policies = {
        "risk": (PolicySettings(policy="risk", risk_threshold=0.5, **capacity), None),
        "benefit": (PolicySettings(policy="benefit", **capacity), estimate),
        "randomized": (PolicySettings(policy="randomized", secret="bench", band_low=0.2, band_high=1.0,
                                      probability=0.5, **capacity), None),
        "oracle (true benefit)": (PolicySettings(policy="benefit", **capacity), TrueBenefit()),
    }
    results = {}
    for name, (settings, benefit) in policies.items():
        d = run_program(config(args.seed), settings, benefit).decisions
        contacted = d[d["action"] == 1]
        results[name] = (len(d), len(contacted), contacted["true_effect"].sum(), contacted["risk"].mean(),
                         (contacted["risk"] > 0.999).mean())
    ceiling = results["oracle (true benefit)"][2] / results["oracle (true benefit)"][1]
    print(f"\nprogram: {args.patients:,} patients x {args.days} days, {args.coaches} coaches x {args.per_coach} "
          f"contacts a day (at most {per_day} a day); same patients and draws for every policy")
    print(f"  {'policy':22s} {'decisions':>9s} {'contacts':>8s} {'prevented':>9s} {'per 100':>8s} {'of oracle':>9s} "
          f"{'mean risk':>9s} {'gone':>6s}")
    for name, (decisions, contacts, prevented, risk, gone) in results.items():
        per100 = 100 * prevented / contacts if contacts else float("nan")
        print(f"  {name:22s} {decisions:9,d} {contacts:8,d} {prevented:9.1f} {per100:8.2f} "
              f"{per100 / (100 * ceiling):9.2f} {risk:9.2f} {gone:6.1%}")
    print("  (prevented: expected lapses prevented = sum of true effects over contacts; gone: share of contacts "
          "who had already silently quit)")
    print(f"  total {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
