"""The effect analysis's table from the service's decision log (its real schema) and the stored outcomes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import pandas as pd

from outreach.decisions_table import check_decisions_exist, decisions_table_from_log, unknown_decisions
from outreach.errors import OutreachError
from outreach.outcomes import Outcome, record_outcomes
from serving.decision_log import DECISIONS, METADATA, make_engine

START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def _log(db_url: str, rows: list[dict]) -> None:
    engine = make_engine(db_url)
    METADATA.create_all(engine)
    base = {"request_id": "r", "endpoint": "triage", "as_of": START.isoformat(), "model_name": "m",
            "model_version": "1", "reasons": "[]", "priority": "routine", "program": None}
    with engine.begin() as connection:
        connection.execute(DECISIONS.insert(), [{**base, **row} for row in rows])
    engine.dispose()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'decisions.db'}"


def _row(patient: str, day: int, trigger: bool, **more) -> dict:
    return {"patient_id": patient, "decided_at": (START + timedelta(days=day)).isoformat(), "risk": 0.6,
            "tier": "high", "trigger": trigger, **more}


def test_columns_outcomes_and_open_windows(db_url):
    _log(db_url, [_row("p1", 0, True), _row("p2", 0, False), _row("p3", 1, True), _row("p4", 30, True)])
    record_outcomes([
        Outcome(outcome_id="a", decision_id="1", kind="re_engaged", at=START + timedelta(days=3)),
        # After the window: not re-engaged within 7 days.
        Outcome(outcome_id="b", decision_id="2", kind="re_engaged", at=START + timedelta(days=9)),
        # A call reached the patient, but that is not the patient coming back.
        Outcome(outcome_id="c", decision_id="3", kind="reached", at=START + timedelta(days=1, hours=2)),
    ], db_url)
    table = decisions_table_from_log(db_url, window_days=7, moderators=("risk",), until=START + timedelta(days=20))
    assert list(table.columns) == ["unit", "time", "action", "probability", "outcome", "tier", "risk"]
    # The decision of day 30 has no outcome yet (its window is still open) and is left out.
    assert list(table["unit"]) == ["p1", "p2", "p3"]
    assert list(table["outcome"]) == [1, 0, 0]
    # Logged before policies were recorded: the trigger is the action, and they were not randomized.
    assert list(table["action"]) == [1, 0, 1] and list(table["probability"]) == [1.0, 0.0, 1.0]


def test_recorded_policy_columns_are_used_when_present(db_url):
    _log(db_url, [_row("p1", 0, False, action=False, propensity=0.5, policy="randomized"),
                  _row("p2", 0, True, action=True, propensity=0.4, policy="randomized")])
    table = decisions_table_from_log(db_url, until=START + timedelta(days=20))
    assert list(table["probability"]) == [0.5, 0.4] and list(table["action"]) == [0, 1]


def test_features_join_by_patient_and_as_of_and_can_be_moderators(db_url):
    _log(db_url, [_row("p1", 0, True), _row("p2", 0, False), _row("p3", 0, False)])
    features = pd.DataFrame({"patient_id": ["p1", "p2", "p2"], "as_of": [START, START, START + timedelta(days=1)],
                             "days_since_last_session": [3.0, 9.0, 10.0], "risk": [0.0, 0.0, 0.0]})
    table = decisions_table_from_log(db_url, moderators=("days_since_last_session", "risk"),
                                     until=START + timedelta(days=20), features=features)
    # p2's later snapshot is not the one decided on; p3 has none; the log's own risk is kept.
    assert table["days_since_last_session"].tolist()[:2] == [3.0, 9.0]
    assert pd.isna(table["days_since_last_session"].iloc[2])
    assert table["risk"].tolist() == [0.6, 0.6, 0.6]


def test_an_unknown_moderator_and_a_missing_log_are_named(db_url, tmp_path):
    _log(db_url, [_row("p1", 0, True)])
    with pytest.raises(OutreachError, match="moderator\\(s\\) days_silent: not a column of the decision log"):
        decisions_table_from_log(db_url, moderators=("days_silent",))
    with pytest.raises(OutreachError, match="no decisions table"):
        decisions_table_from_log(f"sqlite:///{tmp_path / 'empty.db'}")


def test_outcomes_must_name_logged_decisions(db_url):
    _log(db_url, [_row("p1", 0, True), _row("p2", 0, True)])
    assert unknown_decisions(["1", "2", "3", "x"], db_url) == {"3", "x"}
    outcomes = [Outcome(outcome_id=f"o{i}", decision_id=d, kind="attempted", at=START) for i, d in
                enumerate(["2", "77"])]
    with pytest.raises(OutreachError, match="^outcome 2: field 'decision_id': no such decision") as caught:
        check_decisions_exist(outcomes, db_url)
    assert caught.value.position == 2 and "77" not in str(caught.value)
    assert caught.value.field == "decision_id"
