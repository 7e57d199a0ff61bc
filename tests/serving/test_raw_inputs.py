"""Raw profile + events of a few patients take the array path (compute_features_one); it must give exactly
the table path's features, and leave the contract's messages to the table path."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from features.contract import EventType
from models.loaded import load_version
from serving import inputs
from serving.inputs import InputProblems, feature_matrix
from serving.schemas import ScoreRequest

_VALUES = {"session": lambda r: float(r.uniform(0, 90)), "mood_checkin": lambda r: float(r.integers(0, 11)),
           "phq9": lambda r: float(r.integers(0, 28)), "gad7": lambda r: float(r.integers(0, 22)),
           "module_completed": lambda r: float(r.integers(1, 30)) if r.random() < 0.7 else None}


@pytest.fixture(scope="module")
def model(kit):
    return load_version(kit.trained.uri, "lapse-dropout", kit.trained.version, "champion")


def _patient(rng: np.random.Generator, now: datetime, i: int) -> dict:
    start = now - timedelta(days=float(rng.uniform(3, 90)))
    span_h = (now - start).total_seconds() / 3600
    events = []
    for hours in rng.uniform(0, span_h * 0.98, int(rng.integers(0, 250))):
        kind = str(rng.choice([t.value for t in EventType]))
        value = _VALUES[kind](rng) if kind in _VALUES else None
        events.append({"timestamp": (start + timedelta(hours=float(hours))).isoformat(), "event_type": kind,
                       "value": value})
    profile = {"enrolled_at": start.isoformat()}
    if rng.random() < 0.8:
        profile.update(age=int(rng.integers(16, 90)), sex=str(rng.choice(["female", "male", "other", "unknown"])),
                       education=str(rng.choice(["primary", "secondary", "tertiary", "unknown"])),
                       baseline_phq9=int(rng.integers(0, 28)), baseline_gad7=int(rng.integers(0, 22)),
                       program=" mood-app ", human_support=bool(rng.random() < 0.5),
                       reminders=bool(rng.random() < 0.5),
                       referral_source=str(rng.choice([" gp", "self", "employer ", "clinician", "other", ""])))
    as_of = now - timedelta(hours=float(rng.uniform(0, 72)))
    return {"patient_id": f"p{i}", "as_of": as_of.isoformat(), "profile": profile, "events": events}


def _both_paths(items, model, now, monkeypatch):
    fast, _ = feature_matrix(items, model, now, lambda i: f"patients[{i}]")
    with monkeypatch.context() as patch:
        patch.setattr(inputs, "_TABLE_PATIENTS", 0)
        table, _ = feature_matrix(items, model, now, lambda i: f"patients[{i}]")
    return fast, table


def test_the_array_path_gives_exactly_the_table_path_features(model, monkeypatch):
    now = datetime.now(timezone.utc)
    rng = np.random.default_rng(15)
    for i in range(60):
        items = ScoreRequest.model_validate({"patients": [_patient(rng, now, i)]}).patients
        fast, table = _both_paths(items, model, now, monkeypatch)
        assert np.array_equal(fast, table, equal_nan=True), f"patient {i}"


@pytest.mark.parametrize("change, field", [
    (lambda p: p["events"].append({"timestamp": p["as_of"], "event_type": "mood_checkin", "value": None}),
     "value"),
    (lambda p: p["events"].append({"timestamp": p["as_of"], "event_type": "phq9", "value": 3.5}), "value"),
    (lambda p: p["events"].append({"timestamp": "2001-01-01T00:00:00Z", "event_type": "session"}), "timestamp"),
])
def test_broken_events_get_the_contracts_message_naming_the_event(model, change, field):
    now = datetime.now(timezone.utc)
    patient = _patient(np.random.default_rng(3), now, 0)
    change(patient)
    items = ScoreRequest.model_validate({"patients": [patient]}).patients
    with pytest.raises(InputProblems) as caught:
        feature_matrix(items, model, now, lambda i: f"patients[{i}]")
    where = f"patients[0].events[{len(patient['events']) - 1}].{field}"
    assert where in [p["field"] for p in caught.value.problems]
