"""Trigger policies: thresholds, capacity per day and per coach, reproducible draws, correct propensities."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from pydantic import ValidationError

from outreach.errors import OutreachError
from outreach.policy import Candidate, decide, hmac_uniform, realized_propensities
from outreach.settings import PolicySettings

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def _with(settings: PolicySettings, **changes) -> PolicySettings:
    return PolicySettings(**{**settings.model_dump(), **changes})


def _candidates(risks, coaches=None, time=T0, tiers=None):
    coaches = coaches or [None] * len(risks)
    tiers = tiers or [None] * len(risks)
    return [Candidate(f"P{i}", time, r, tier=t, coach=c) for i, (r, c, t) in enumerate(zip(risks, coaches, tiers))]


def test_risk_policy_supports_above_threshold_highest_first_within_capacity():
    settings = PolicySettings(policy="risk", risk_threshold=0.5, capacity_per_day=2)
    decided = decide(_candidates([0.9, 0.4, 0.7, 0.95, 0.6]), settings)
    assert [d.action for d in decided] == [True, False, False, True, False]
    assert [d.propensity for d in decided] == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert decided[1].note == "below the risk threshold"
    assert decided[2].note == "over capacity"
    assert all(d.policy_version.startswith("risk-") for d in decided)


def test_capacity_per_coach_and_per_day_are_both_respected():
    risks = [0.9, 0.8, 0.7, 0.95, 0.85, 0.6, 0.99]
    coaches = ["a", "a", "a", "b", "b", "b", "c"]
    settings = PolicySettings(policy="risk", risk_threshold=0.0, capacity_per_coach=2, capacity_per_day=4)
    decided = decide(_candidates(risks, coaches), settings)
    chosen = [(d.coach, d.patient_id) for d in decided if d.action]
    assert len(chosen) == 4
    per_coach = {c: sum(1 for coach, _ in chosen if coach == c) for c in "abc"}
    assert max(per_coach.values()) <= 2
    # Within each coach, the highest risks are the ones contacted.
    assert ("a", "P0") in chosen and ("b", "P3") in chosen and ("c", "P6") in chosen
    # A second day has its own capacity.
    tomorrow = decide(_candidates(risks, coaches, time=T0 + timedelta(days=1)) + _candidates(risks, coaches),
                      settings)
    assert sum(d.action for d in tomorrow) == 8


def test_randomized_draw_is_reproducible_and_recorded():
    settings = PolicySettings(policy="randomized", secret="k1", band_low=0.3, band_high=0.9, probability=0.5)
    first = decide(_candidates([0.5, 0.2, 0.8, 0.95]), settings)
    again = decide(_candidates([0.5, 0.2, 0.8, 0.95]), settings)
    assert first == again
    assert first[0].draw == hmac_uniform("k1", "P0", T0)
    inside = [first[0], first[2]]
    assert all(d.offered_probability == 0.5 and d.propensity == 0.5 for d in inside)
    assert all(d.action == (d.draw < 0.5) for d in inside)
    assert first[1].propensity == 0.0 and not first[1].action and first[1].note == "outside the randomization band"
    other = decide(_candidates([0.5, 0.2, 0.8, 0.95]), _with(settings, secret="k2"))
    assert [d.draw for d in other] != [d.draw for d in first]


def test_probability_is_clipped_and_secret_required():
    settings = PolicySettings(policy="randomized", secret="k", band_low=0.0, probability=0.95)
    assert {d.offered_probability for d in decide(_candidates([0.5, 0.6]), settings)} == {0.8}
    with pytest.raises(ValidationError, match="secret"):
        PolicySettings(policy="randomized")
    with pytest.raises(ValidationError, match="band_low"):
        PolicySettings(policy="randomized", secret="k", band_low=0.8, band_high=0.3)


def test_realized_propensity_matches_contact_frequency_under_binding_capacity():
    """Randomize first, then cap: the recorded propensity is the true frequency of contact."""
    risks = [0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55]
    coaches = ["a"] * 5 + ["b"] * 3
    base = PolicySettings(policy="randomized", secret="s", band_low=0.0, probability=0.5,
                          capacity_per_coach=2, capacity_per_day=3)
    first = decide(_candidates(risks, coaches), base)
    propensity = np.array([d.propensity for d in first])
    # Quotas down the ranking: coach a 2, coach b 1. A chance below 0.2 is not randomized at all.
    assert propensity == pytest.approx([0.5, 0.5, 0.375, 0.25, 0.0, 0.5, 0.25, 0.0])
    assert first[4].note == "over capacity (not randomized)"
    n = 3000
    contacted = np.zeros(len(risks))
    for s in range(n):
        decided = decide(_candidates(risks, coaches), _with(base, secret=f"s{s}"))
        assert sum(d.action for d in decided) <= 3
        assert sum(d.action for d in decided if d.coach == "a") <= 2
        contacted += [d.action for d in decided]
    frequency = contacted / n
    se = np.sqrt(propensity * (1 - propensity) / n)
    assert np.all(np.abs(frequency - propensity) < 4 * se + 1e-9)


def test_realized_propensities_known_values():
    # Quota 1 among three drawn with p = 0.5: 0.5, 0.25, 0.125.
    assert realized_propensities(np.full(3, 0.5), 1) == pytest.approx([0.5, 0.25, 0.125])
    assert realized_propensities(np.full(3, 0.5), 0).tolist() == [0.0, 0.0, 0.0]


class _TierBenefit:
    def __init__(self, by_tier):
        self.by_tier = by_tier

    def expected_benefit(self, candidate):
        return self.by_tier[candidate.tier]


def test_benefit_policy_ranks_by_expected_benefit_and_falls_back_to_risk():
    risks, tiers = [0.99, 0.6, 0.3], ["gone", "slipping", "well"]
    settings = PolicySettings(policy="benefit", risk_threshold=0.5, capacity_per_day=1)
    model = _TierBenefit({"gone": 0.0, "slipping": 0.15, "well": 0.02})
    decided = decide(_candidates(risks, tiers=tiers), settings, model)
    assert [d.action for d in decided] == [False, True, False]
    assert decided[0].note == "no expected benefit"
    fallback = decide(_candidates(risks, tiers=tiers), settings)
    assert [d.action for d in fallback] == [True, False, False]
    assert all(d.note.startswith("no effect estimate yet: ranked by risk") for d in fallback)


def test_bad_candidate_is_named():
    with pytest.raises(OutreachError, match="candidate 2: field 'risk'"):
        decide(_candidates([0.5, 1.5]), PolicySettings())
    naive = [Candidate("P0", datetime(2026, 3, 2), 0.5)]
    with pytest.raises(OutreachError, match="decision_time"):
        decide(naive, PolicySettings())
