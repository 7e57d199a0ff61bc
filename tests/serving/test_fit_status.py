"""Fit for purpose: patients outside what the model was trained on get an explicit status, the same over HTTP
and in batch scoring; raw events must come with the time to compute features for."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from models.loaded import load_version
from models.scoring import score_frame


@pytest.fixture(scope="module")
def server(shared_server):
    """The session's default server: these tests only score, under patient ids of their own."""
    return shared_server


def _item(kit, patient_id: str, **values: float) -> dict:
    return {**kit.item(patient_id, **values), "as_of": "2025-10-01T00:00:00Z"}


CASES = {
    "started": dict(active_days_total=6.0, days_since_last_engagement=1.5, days_since_enrolment=20.0),
    "never": dict(active_days_total=0.0, days_since_last_engagement=20.0, days_since_enrolment=20.0),
    "lapsed": dict(active_days_total=4.0, days_since_last_engagement=14.0, days_since_enrolment=40.0),
    "unknown": dict(active_days_total=None, days_since_last_engagement=None, days_since_enrolment=40.0),
}


def test_patients_outside_the_training_population_are_not_scored(server, kit):
    body = {"patients": [_item(kit, name, **values) for name, values in CASES.items()]}
    with server.client() as client:
        results = {r["patient_id"]: r for r in client.post("/score", json=body).json()["results"]}
    assert results["started"]["status"] == "scored" and results["started"]["status_reason"] is None
    assert results["unknown"]["status"] == "scored"  # a value not known is no evidence of lapse
    assert results["never"]["status"] == "not_eligible"
    assert results["never"]["status_reason"]["code"] == "no_engagement_yet"
    assert results["lapsed"]["status"] == "not_eligible"
    assert results["lapsed"]["status_reason"]["code"] == "lapsed"
    assert "14 days" in results["lapsed"]["status_reason"]["words"]
    for name in ("never", "lapsed"):
        support = results[name]["support"]
        assert support == {"trigger": False, "priority": "routine", "why": results[name]["status_reason"]["words"]}


def test_the_explanation_and_batch_scoring_give_the_same_status(server, kit):
    with server.client() as client:
        explained = client.post("/explain", json={"patient": _item(kit, "lapsed", **CASES["lapsed"])}).json()
        scored = client.post("/score", json={"patients": [_item(kit, n, **v) for n, v in CASES.items()]}).json()
    assert explained["status"] == "not_eligible" and explained["status_reason"]["code"] == "lapsed"
    model = load_version(kit.trained.uri, "lapse-dropout", kit.trained.version, "champion")
    rows = [{"patient_id": n, "as_of": pd.Timestamp("2025-10-01", tz="UTC"),
             **{k: (np.nan if v is None else v) for k, v in _item(kit, n, **values)["features"].items()}}
            for n, values in CASES.items()]
    batch = score_frame(pd.DataFrame(rows), model, top_reasons=5)
    assert [(r.patient_id, r.status) for r in batch] == [(r["patient_id"], r["status"]) for r in scored["results"]]
    assert [r.risk for r in batch] == pytest.approx([r["risk"] for r in scored["results"]], abs=1e-12)


def test_raw_events_without_an_as_of_time_are_refused(server):
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=10)
    item = {"patient_id": "raw-1", "profile": {"enrolled_at": start.isoformat()},
            "events": [{"timestamp": (start + timedelta(days=1)).isoformat(), "event_type": "session", "value": 12.0}]}
    with server.client() as client:
        refused = client.post("/score", json={"patients": [item]})
        answered = client.post("/score", json={"patients": [{**item, "as_of": now.isoformat()}]})
    assert refused.status_code == 422
    assert [p["field"] for p in refused.json()["problems"]] == ["patients[0].as_of"]
    assert answered.status_code == 200
    assert answered.json()["results"][0]["status"] == "scored"


def test_raw_events_of_a_lapsed_patient_give_the_lapsed_status(server):
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=60)
    events = [{"timestamp": (start + timedelta(days=d)).isoformat(), "event_type": "session", "value": 10.0}
              for d in range(0, 30, 2)]
    item = {"patient_id": "raw-2", "as_of": now.isoformat(), "profile": {"enrolled_at": start.isoformat()},
            "events": events}
    with server.client() as client:
        result = client.post("/score", json={"patients": [item]}).json()["results"][0]
    assert result["status"] == "not_eligible" and result["status_reason"]["code"] == "lapsed"


def test_the_decision_log_records_each_patients_status(server, kit):
    body = {"patients": [_item(kit, f"logged-{name}", **values) for name, values in CASES.items()]}
    with server.client() as client:
        assert client.post("/score", json=body).status_code == 200
        page = client.get("/decisions", params={"limit": 1000}).json()
    statuses = {d["patient_id"]: d["status"] for d in page["decisions"] if d["patient_id"].startswith("logged-")}
    assert statuses == {"logged-started": "scored", "logged-never": "not_eligible",
                        "logged-lapsed": "not_eligible", "logged-unknown": "scored"}
