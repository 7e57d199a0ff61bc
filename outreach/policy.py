"""Trigger policies: who of today's candidates a coach contacts, within coach capacity.

- `risk`: support when risk >= the threshold, highest risk first; propensity 0 or 1.
- `randomized` (a micro-randomized trial): patients whose risk is in the eligible band are offered
  support with probability p (clipped into [0.2, 0.8] by default). The draw is
  HMAC-SHA256(secret, patient id | decision time) read as a uniform number in [0, 1): reproducible
  by anyone holding the secret, unpredictable to anyone else. p, the draw and the policy version
  are recorded on every decision.
- `benefit`: highest expected benefit first (the moderated effect of support for the patient's
  tier and moderators, from `outreach.effect`), only where it is positive. Without an effect
  estimate it falls back to the risk ranking and says so on every decision.

Capacity. Candidates are grouped by the UTC calendar day of their decision time. Before any draw,
each coach gets a quota: going down the day's ranking of eligible patients (by the policy's score),
a slot goes to the patient's coach while the day's capacity and that coach's capacity last. For
`risk` and `benefit` this is simply the top-k by score within both capacities. The randomized
policy randomizes first, then caps: within a coach, drawn patients are contacted in rank order
until the quota is used (so a day may leave capacity unused). Because the quotas are fixed before
any draw and the draws are independent, patient i's realized probability of contact is exactly
p_i * P(fewer than quota of the coach's patients ranked above i were drawn), computed by a small
dynamic programme; that realized propensity is what each decision records (it equals p when
capacity does not bind) and what the effect analysis must use. It falls down the ranking, so once it
would drop below `probability_min` the rest of that coach's patients are not randomized that day
(propensity 0, no contact): this changes nobody's chance above them and keeps the weights stable.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import numpy as np

from outreach.errors import OutreachError
from outreach.settings import PolicySettings

NO_COACH = ""


# Slotted, not frozen: one is made per patient per decision, and frozen ones cost three times as much to make.
@dataclass(slots=True)
class Candidate:
    """A patient due a support decision: the risk, tier and moderators the policies rank by."""

    patient_id: str
    decision_time: datetime
    risk: float
    tier: str | None = None
    coach: str | None = None
    moderators: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Decision:
    """A policy's decision for one candidate, with what an effect analysis needs to use it."""

    patient_id: str
    decision_time: datetime
    action: bool
    # The realized probability that this candidate was contacted, given today's candidates.
    propensity: float
    policy: str
    policy_version: str
    # The ranking score: risk, or expected benefit for the benefit policy.
    score: float
    # Randomized policy only: the offered probability p and the HMAC draw (contact offered if draw < p).
    offered_probability: float | None = None
    draw: float | None = None
    coach: str | None = None
    note: str = ""


class BenefitModel(Protocol):
    """Anything that can say how much support is expected to help one candidate (absolute, 0-1 scale)."""

    def expected_benefit(self, candidate: Candidate) -> float: ...


def hmac_uniform(secret: str, patient_id: str, decision_time: datetime) -> float:
    """A uniform number in [0, 1) from HMAC-SHA256(secret, "patient_id|decision time in UTC ISO 8601")."""
    moment = decision_time.astimezone(timezone.utc).isoformat()
    digest = hmac.new(secret.encode(), f"{patient_id}|{moment}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def allocate_quotas(ranked_coaches: Sequence[str], per_day: int | None, per_coach: int | None) -> dict[str, int]:
    """Contacts each coach may make today: down the day's ranking of eligible patients (their coaches in
    rank order), a slot to the patient's coach while the day and that coach have room."""
    quota = dict.fromkeys(ranked_coaches, 0)
    total = 0
    for coach in ranked_coaches:
        if per_day is not None and total >= per_day:
            break
        if per_coach is None or quota[coach] < per_coach:
            quota[coach] += 1
            total += 1
    return quota


def realized_propensities(p: np.ndarray, quota: int) -> np.ndarray:
    """P(contact) of each ranked patient when each is drawn with p_i and the first `quota` drawn are contacted."""
    out = np.zeros(len(p))
    if quota <= 0:
        return out
    before = np.zeros(quota + 1)  # P(j drawn among those ranked above), j = quota meaning "quota used up"
    before[0] = 1.0
    for i, p_i in enumerate(p):
        open_mass = before[:quota].sum()
        out[i] = p_i * open_mass
        moved = before[:quota] * p_i
        before[:quota] -= moved
        before[1:quota + 1] += moved
    return out


def _check(candidates: Sequence[Candidate]) -> None:
    for position, c in enumerate(candidates):
        if not (isinstance(c.risk, (int, float)) and math.isfinite(c.risk) and 0.0 <= c.risk <= 1.0):
            raise OutreachError(f"candidate {position + 1}: field 'risk' must be a number in [0, 1]", field="risk")
        if c.decision_time.tzinfo is None:
            raise OutreachError(f"candidate {position + 1}: field 'decision_time' must carry a time zone",
                                field="decision_time")


def _score(c: Candidate, settings: PolicySettings, benefit: BenefitModel | None) -> tuple[bool, float, str]:
    """(eligible for contact, ranking score, note when not eligible) under the settings' policy."""
    if settings.policy == "randomized":
        inside = settings.band_low <= c.risk <= settings.band_high
        return inside, c.risk, "" if inside else "outside the randomization band"
    if settings.policy == "benefit" and benefit is not None:
        value = float(benefit.expected_benefit(c))
        return value > 0, value, "" if value > 0 else "no expected benefit"
    above = c.risk >= settings.risk_threshold
    return above, c.risk, "" if above else "below the risk threshold"


def _by_threshold(candidates: Sequence[Candidate], settings: PolicySettings, base_note: str) -> list[Decision]:
    """`decide` by risk without capacity: every candidate `_score` finds eligible is contacted (propensity 1),
    the others are not (propensity 0). The same decisions as ranking each day's list, without the ranking."""
    policy, version = settings.policy, settings.policy_version
    out = []
    for c in candidates:
        eligible, score, note = _score(c, settings, None)
        out.append(Decision(c.patient_id, c.decision_time, eligible, 1.0 if eligible else 0.0, policy, version,
                            float(score), None, None, c.coach, "; ".join(n for n in (base_note, note) if n)))
    return out


def decide(candidates: Sequence[Candidate], settings: PolicySettings,
           benefit: BenefitModel | None = None) -> list[Decision]:
    """One Decision per candidate (same order), under the policy and capacity of `settings`."""
    _check(candidates)
    version = settings.policy_version
    fallback = settings.policy == "benefit" and benefit is None
    base_note = "no effect estimate yet: ranked by risk" if fallback else ""
    if (settings.policy == "risk" or fallback) and settings.capacity_per_day is None \
            and settings.capacity_per_coach is None:
        return _by_threshold(candidates, settings, base_note)
    scored = [_score(c, settings, benefit) for c in candidates]
    p = settings.offered_probability
    secret = settings.secret.get_secret_value()
    draws = [hmac_uniform(secret, c.patient_id, c.decision_time) if settings.policy == "randomized" else None
             for c in candidates]
    action = np.zeros(len(candidates), dtype=bool)
    propensity = np.zeros(len(candidates))
    notes = [note for _, _, note in scored]

    days: dict[object, list[int]] = {}
    for i, c in enumerate(candidates):
        days.setdefault(c.decision_time.astimezone(timezone.utc).date(), []).append(i)
    for members in days.values():
        ranked = sorted((i for i in members if scored[i][0]),
                        key=lambda i: (-scored[i][1], -candidates[i].risk, candidates[i].patient_id))
        by_coach: dict[str, list[int]] = {}
        for i in ranked:
            by_coach.setdefault(candidates[i].coach or NO_COACH, []).append(i)
        quotas = allocate_quotas([candidates[i].coach or NO_COACH for i in ranked],
                                 settings.capacity_per_day, settings.capacity_per_coach)
        for coach, rows in by_coach.items():
            quota = quotas[coach]
            if settings.policy == "randomized":
                chance = realized_propensities(np.full(len(rows), p), quota)
                taken = 0
                for i, chance_i in zip(rows, chance):
                    if chance_i < settings.probability_min:
                        # Too far down today's ranking: not randomized (nobody ranked above is affected).
                        notes[i] = "over capacity (not randomized)"
                        continue
                    propensity[i] = chance_i
                    drawn = draws[i] < p
                    action[i] = drawn and taken < quota
                    taken += int(action[i])
                    notes[i] = "" if action[i] else ("not drawn" if not drawn else "over capacity")
            else:
                for rank, i in enumerate(rows):
                    action[i] = rank < quota
                    propensity[i] = float(action[i])
                    notes[i] = "" if action[i] else "over capacity"
    return [
        Decision(patient_id=c.patient_id, decision_time=c.decision_time, action=bool(action[i]),
                 propensity=float(propensity[i]), policy=settings.policy, policy_version=version,
                 score=float(scored[i][1]), offered_probability=p if settings.policy == "randomized" else None,
                 draw=draws[i], coach=c.coach, note="; ".join(n for n in (base_note, notes[i]) if n))
        for i, c in enumerate(candidates)
    ]
