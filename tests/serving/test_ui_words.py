"""The clinician page's words and Today's choice, without a browser: reason wording and grouping (from the
feature catalog), the queue's sections and capacity (the outreach policy), and the "why now" line."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from features.catalog import FEATURES, THEME_WORDS, spec
from models.reasons import group_reasons, sentence
from models.results import Reason
from outreach.settings import PolicySettings
from serving.work_queue import Activity, state_words, today, why_now

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _reason(name: str, value: float | None, contribution: float) -> Reason:
    s = spec(name)
    return Reason(name, s.label, value, contribution, sentence(name, value, contribution > 0))


def _named(group: str) -> list[str]:
    return [s.name for s in FEATURES if s.group == group]


# --- words ---------------------------------------------------------------------------------------


def test_an_improvement_is_said_as_an_improvement_not_as_a_signed_number():
    assert spec("phq9_change").describe(-9.0) == "PHQ-9 improved by 9 points since enrolment"
    assert spec("phq9_change").describe(1.0) == "PHQ-9 worse by 1 point since enrolment"
    assert spec("phq9_change").describe(0.2) == "PHQ-9 unchanged since enrolment"
    assert spec("gad7_change").describe(-2.0) == "GAD-7 improved by 2 points since enrolment"
    assert sentence("phq9_change", -9.0, True) == "PHQ-9 improved by 9 points since enrolment raises risk"
    # No change-like feature prints a bare sign ("PHQ-9 -9 points", "changing by -0.40").
    changing = [s for s in FEATURES if re.search(r"change|trend|slope", s.name)]
    assert len(changing) >= 5
    for s in changing:
        for value in (-3.0, -0.4, 2.5):
            assert not re.search(r"(^|\s)[+-]\d", s.describe(value)), (s.name, s.describe(value))


def test_related_reasons_are_said_once_and_missing_covariates_are_never_a_reason():
    recency, frequency = _named("recency"), _named("frequency")
    reasons = [
        _reason(recency[0], 12.0, 0.9),       # No activity for 12 days
        _reason(recency[1], 12.0, 0.5),       # No session for 12 days
        _reason(frequency[0], 0.0, 0.3),      # 0 sessions in the last 7 days
        _reason("phq9_change", -9.0, 0.4),    # an improvement that raises the risk
        _reason("education_primary", None, 0.7),  # education not recorded: a missing covariate
        _reason("coach_messages_total", 3.0, -0.2),
    ]
    groups = group_reasons(reasons, 5)
    assert [g.title for g in groups] == [THEME_WORDS["inactivity"], THEME_WORDS["symptoms"], THEME_WORDS["coach"]]
    inactivity = groups[0]
    assert inactivity.sentence == "No activity for 12 days"
    assert inactivity.contribution == pytest.approx(1.7) and inactivity.raises
    assert len(inactivity.related) == 2
    assert groups[1].sentence == "PHQ-9 improved by 9 points since enrolment"
    assert not groups[2].raises
    assert all("not recorded" not in g.sentence.lower() for g in groups)
    assert group_reasons(reasons, 1) == groups[:1]


def test_a_theme_is_worded_by_a_member_pulling_its_way():
    recency = _named("recency")
    groups = group_reasons([_reason(recency[0], 2.0, -0.6), _reason(recency[1], 20.0, 0.2)], 3)
    assert len(groups) == 1 and not groups[0].raises
    assert groups[0].sentence == spec(recency[0]).describe(2.0)


# --- Today ---------------------------------------------------------------------------------------


def _row(pid: str, risk: float, change: float | None = None) -> dict:
    return {"patient_id": pid, "risk": risk, "tier": "high", "change": change,
            "previous_as_of": None if change is None else "2026-02-23T09:00:00+00:00"}


def test_today_is_the_policys_top_patients_within_capacity_in_two_sections():
    rows = [_row("a", 0.95), _row("b", 0.90), _row("c", 0.85), _row("d", 0.80), _row("e", 0.75), _row("f", 0.3)]
    states = {"a": Activity(3, 20, False),   # active, slipping
              "b": Activity(16, 22, False),  # stopped 16 days ago: recently lapsed
              "c": Activity(2, 5, True),     # left the program: not in Today
              "d": Activity(60, 8, False),   # stopped long ago: not in Today
              "e": Activity(0, 30, False), "f": Activity(1, 9, False)}
    policy = PolicySettings(risk_threshold=0.5)
    chosen = today(rows, states, {}, policy, capacity=2, lapsed_after=14, recent_days=28, now=NOW)
    assert [(c["patient_id"], c["section"], c["rank"]) for c in chosen] == [("a", "slipping", 1), ("b", "lapsed", 2)]
    wider = today(rows, states, {}, policy, capacity=10, lapsed_after=14, recent_days=28, now=NOW)
    # f is below the policy's threshold; c left; d stopped too long ago.
    assert [c["patient_id"] for c in wider] == ["a", "b", "e"]
    # The policy's own capacity, when set, is the team's capacity.
    one = today(rows, states, {}, policy.model_copy(update={"capacity_per_day": 1}), capacity=10, lapsed_after=14,
                recent_days=28, now=NOW)
    assert [c["patient_id"] for c in one] == ["a"]


def test_why_now_says_in_one_line_what_changed_without_a_risk_figure():
    slipping = why_now(_row("a", 0.8, 0.15), Activity(4, 20, False), "PHQ-9 worse by 3 points since enrolment",
                       lapsed=False)
    assert slipping == ("Risk up 15 points since 23 Feb; last used it 4 days ago; "
                        "PHQ-9 worse by 3 points since enrolment")
    lapsed = why_now(_row("b", 0.9), Activity(16, 23, False), None, lapsed=True)
    assert lapsed == "No use of the program for 16 days, after 23 days of use"
    assert "%" not in slipping + lapsed and "\n" not in slipping + lapsed
    assert state_words(Activity(16, 23, False), 14) == "Stopped 16 days ago"
    assert state_words(Activity(1, 23, False), 14) == "Active, last use 1 day ago"
    assert state_words(Activity(1, 23, True), 14) == "Left the program"
