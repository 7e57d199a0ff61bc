"""The guard's range checks of a request's events: every event that breaks a range is named, with its field and
rule, and only those; times are compared as instants whatever zone they are written in."""

from __future__ import annotations

from datetime import datetime

from serving.bounds import batch_problems
from serving.schemas import ScoreRequest

EARLIEST = datetime.fromisoformat("2000-01-01T00:00:00+00:00")


def _problems(events: list[dict]) -> list[tuple[str, str]]:
    patient = {"patient_id": "p1", "as_of": "2026-03-01T00:00:00Z", "events": events,
               "profile": {"enrolled_at": "2026-01-01T00:00:00Z"}}
    items = ScoreRequest.model_validate({"patients": [{"patient_id": "p0", "features": {}}, patient]}).patients
    found = batch_problems(items, EARLIEST)
    assert set(found) <= {1}
    return [(p["field"], p["type"]) for p in found.get(1, [])]


def test_events_in_range_have_no_problem():
    events = [{"timestamp": "2000-01-01T00:00:00Z", "event_type": "session", "value": 480.0},  # the bounds
              {"timestamp": "2000-01-01T05:30:00+05:30", "event_type": "mood_checkin", "value": 0.0},
              {"timestamp": "2026-02-01T10:00:00-08:00", "event_type": "module_completed", "value": None},
              {"timestamp": "2026-02-01T10:00:00Z", "event_type": "exercise_completed", "value": -3.0e38}]
    assert _problems(events) == []


def test_each_event_out_of_range_is_named_in_order_with_its_field():
    events = [{"timestamp": "2026-02-01T10:00:00Z", "event_type": "session", "value": 30.0},
              # 1999-12-31T23:30 UTC, although its date as written is in 2000
              {"timestamp": "2000-01-01T05:00:00+05:30", "event_type": "session", "value": 30.0},
              {"timestamp": "2026-02-01T10:00:00Z", "event_type": "mood_checkin", "value": 10.5},
              {"timestamp": "2026-02-01T10:00:00Z", "event_type": "phq9", "value": -1.0},
              {"timestamp": "1999-06-01T00:00:00Z", "event_type": "module_completed", "value": 0.0},
              {"timestamp": "2026-02-01T10:00:00Z", "event_type": "exercise_completed", "value": 1.0e39},
              {"timestamp": "2026-02-01T10:00:00Z", "event_type": "session", "value": None}]
    assert _problems(events) == [
        ("patients[1].events[1].timestamp", "too_early"),
        ("patients[1].events[2].value", "out_of_range"),
        ("patients[1].events[3].value", "out_of_range"),
        ("patients[1].events[4].timestamp", "too_early"),
        ("patients[1].events[4].value", "out_of_range"),
        ("patients[1].events[5].value", "out_of_range"),
    ]
