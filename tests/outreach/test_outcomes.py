"""Outcome records: idempotent by outcome_id, conflicts refused, bad input named, failed imports store nothing."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from outreach.errors import OutcomeConflict, OutreachError
from outreach.outcomes import Outcome, import_outcomes, read_outcomes, record_outcomes
from outreach.reengagement import reengagement_outcomes

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'decisions.db'}"


def _outcome(outcome_id: str, kind: str = "attempted", **changes) -> Outcome:
    return Outcome(**{"outcome_id": outcome_id, "decision_id": "d-1", "kind": kind, "at": T0, "coach": "c-1",
                      **changes})


def test_retry_with_same_body_is_a_no_op(db_url):
    assert record_outcomes([_outcome("o-1"), _outcome("o-2", "reached")], db_url) == (2, 0)
    assert record_outcomes([_outcome("o-1")], db_url) == (0, 1)
    stored = read_outcomes(db_url)
    assert sorted(stored["outcome_id"]) == ["o-1", "o-2"]
    assert set(stored["kind"]) == {"attempted", "reached"}


def test_same_id_with_a_different_body_is_a_conflict_and_stores_nothing(db_url):
    record_outcomes([_outcome("o-1")], db_url)
    with pytest.raises(OutcomeConflict, match="different kind"):
        record_outcomes([_outcome("o-9"), _outcome("o-1", "declined")], db_url)
    stored = read_outcomes(db_url)
    assert list(stored["outcome_id"]) == ["o-1"]
    assert list(stored["kind"]) == ["attempted"]


def test_bad_field_is_named(tmp_path, db_url):
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({"outcome_id": ["o-1", "o-2"], "decision_id": ["d-1", "d-2"], "kind": ["reached", "phoned"],
                  "at": ["2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z"]}).to_csv(path, index=False)
    with pytest.raises(OutreachError, match=r"row 2: field 'kind'") as caught:
        import_outcomes(path, db_url)
    assert caught.value.field == "kind"
    assert read_outcomes(db_url).empty


def test_time_without_zone_is_refused(db_url, tmp_path):
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({"outcome_id": ["o-1"], "decision_id": ["d-1"], "kind": ["reached"],
                  "at": ["2026-03-02T09:00:00"]}).to_csv(path, index=False)
    with pytest.raises(OutreachError, match=r"row 1: field 'at'"):
        import_outcomes(path, db_url)


def test_failed_import_stores_nothing_and_rerun_is_idempotent(tmp_path, db_url):
    good = pd.DataFrame({"outcome_id": ["o-1", "o-2"], "decision_id": ["d-1", "d-2"],
                         "kind": ["attempted", "no_answer"], "at": ["2026-03-02T09:00:00Z"] * 2,
                         "coach": ["c-1", None]})
    good.to_parquet(tmp_path / "good.parquet")
    summary = import_outcomes(tmp_path / "good.parquet", db_url)
    assert (summary.rows, summary.stored, summary.already_stored) == (2, 2, 0)
    assert import_outcomes(tmp_path / "good.parquet", db_url).stored == 0

    # A new outcome plus an old id with a changed body: the whole file is refused.
    bad = pd.DataFrame({"outcome_id": ["o-3", "o-2"], "decision_id": ["d-3", "d-2"],
                        "kind": ["reached", "reached"], "at": ["2026-03-03T09:00:00Z"] * 2})
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(OutcomeConflict):
        import_outcomes(tmp_path / "bad.csv", db_url)
    stored = read_outcomes(db_url)
    assert sorted(stored["outcome_id"]) == ["o-1", "o-2"]
    assert stored.set_index("outcome_id").loc["o-2", "kind"] == "no_answer"


def test_unknown_and_missing_columns_are_named(tmp_path, db_url):
    path = tmp_path / "outcomes.csv"
    pd.DataFrame({"outcome_id": ["o-1"], "decision_id": ["d-1"], "kind": ["reached"], "at": ["2026-03-02T09:00Z"],
                  "phq9": ["12"]}).to_csv(path, index=False)
    with pytest.raises(OutreachError, match="unknown column.*phq9"):
        import_outcomes(path, db_url)
    pd.DataFrame({"outcome_id": ["o-1"], "kind": ["reached"], "at": ["2026-03-02T09:00Z"]}).to_csv(path, index=False)
    with pytest.raises(OutreachError, match="missing column.*decision_id"):
        import_outcomes(path, db_url)


def test_reengagement_counts_own_use_within_the_window_only():
    decisions = pd.DataFrame({"decision_id": ["d-1", "d-2", "d-3"], "patient_id": ["P1", "P2", "P3"],
                              "decided_at": [T0, T0, T0]})
    events = pd.DataFrame({
        "patient_id": ["P1", "P1", "P2", "P3", "P3"],
        "timestamp": pd.to_datetime([T0 - timedelta(hours=1), T0 + timedelta(days=2), T0 + timedelta(days=1),
                                     T0 + timedelta(days=1), T0 + timedelta(days=9)], utc=True),
        # P2 only got a coach message (not own use); P3's own use comes after the window.
        "event_type": ["session", "mood_checkin", "message_from_coach", "reminder_opened", "session"],
    })
    found = reengagement_outcomes(decisions, events, window_days=7)
    assert [(o.decision_id, o.kind.value, o.at) for o in found] == [("d-1", "re_engaged", T0 + timedelta(days=2))]
    assert found[0].outcome_id == "re_engaged:d-1"


def test_reengagement_names_a_missing_column():
    with pytest.raises(OutreachError, match="events: missing column.*event_type"):
        reengagement_outcomes(pd.DataFrame({"decision_id": [], "patient_id": [], "decided_at": []}),
                              pd.DataFrame({"patient_id": [], "timestamp": []}))


def test_outcomes_live_beside_the_decisions_table_without_touching_it(tmp_path):
    path = tmp_path / "decisions.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY, request_id TEXT)")
        db.execute("INSERT INTO decisions (request_id) VALUES ('d-1')")
    record_outcomes([_outcome("o-1")], f"sqlite:///{path}")
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT request_id FROM decisions").fetchall() == [("d-1",)]
        assert db.execute("SELECT outcome_id, decision_id FROM outcomes").fetchall() == [("o-1", "d-1")]
