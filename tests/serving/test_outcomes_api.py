"""POST /outcomes against a real server: idempotent by outcome_id, refusals name positions and fields, never values."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from outreach.outcomes import read_outcomes

SECRET_OUTCOME = "outcome-secret-4b1f"
SECRET_PATIENT = "pat-secret-91c2"


@pytest.fixture(scope="module")
def server(shared_server):
    """The session's default server. Other modules score and triage on it too, never posting outcomes: the
    outcomes read back here are this module's, its triage rows are picked by its patients' ids, and its
    decisions are the last two it made."""
    return shared_server


def _decision_ids(server) -> list[str]:
    engine = sa.create_engine(server.decisions_url)
    try:
        with engine.connect() as connection:
            return [str(row[0]) for row in connection.execute(sa.text("SELECT id FROM decisions ORDER BY id"))]
    finally:
        engine.dispose()


def _outcome(outcome_id: str, decision_id: str, kind: str = "reached") -> dict:
    return {"outcome_id": outcome_id, "decision_id": decision_id, "kind": kind, "at": "2026-03-02T10:00:00+00:00",
            "coach": "coach-1"}


@pytest.fixture(scope="module")
def decided(server, kit) -> list[str]:
    with server.client() as client:
        reply = client.post("/score", json={"patients": [kit.item(SECRET_PATIENT), kit.item("pat-2")]})
    assert reply.status_code == 200, reply.text
    return _decision_ids(server)[-2:]


def test_outcomes_need_an_api_key(server, decided):
    with server.client() as client:
        reply = client.post("/outcomes", json={"outcomes": [_outcome("o-key", decided[0])]},
                            headers={"Authorization": ""})
    assert reply.status_code == 401


def test_a_retry_returns_the_first_result_and_stores_nothing_twice(server, decided):
    body = {"outcomes": [_outcome("o-1", decided[0]), _outcome("o-2", decided[1], "re_engaged")]}
    with server.client() as client:
        first = client.post("/outcomes", json=body)
        again = client.post("/outcomes", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 2 and [o["status"] for o in first.json()["outcomes"]] == ["stored"] * 2
    assert again.status_code == 200
    assert again.json()["stored"] == 0 and again.json()["already_stored"] == 2
    assert [o["recorded_at"] for o in again.json()["outcomes"]] == [o["recorded_at"] for o in first.json()["outcomes"]]
    stored = read_outcomes(server.decisions_url)
    assert sorted(stored["outcome_id"]) == ["o-1", "o-2"]


def test_same_id_with_a_different_body_is_409_naming_the_position_and_stores_nothing(server, decided):
    with server.client() as client:
        assert client.post("/outcomes", json={"outcomes": [_outcome(SECRET_OUTCOME, decided[0])]}).status_code == 200
        reply = client.post("/outcomes", json={"outcomes": [_outcome("o-new", decided[0]),
                                                            _outcome(SECRET_OUTCOME, decided[0], "declined")]})
    assert reply.status_code == 409
    assert reply.json()["problems"][0]["field"] == "outcomes[1].outcome_id"
    assert "kind" in reply.json()["problems"][0]["rule"]
    assert SECRET_OUTCOME not in reply.text
    assert "o-new" not in set(read_outcomes(server.decisions_url)["outcome_id"])


def test_an_unknown_decision_is_422_naming_the_position_and_stores_nothing(server, decided):
    with server.client() as client:
        reply = client.post("/outcomes", json={"outcomes": [_outcome("o-3", decided[0]),
                                                            _outcome("o-4", "999999")]})
    assert reply.status_code == 422
    assert reply.json()["problems"][0]["field"] == "outcomes[1].decision_id"
    assert "999999" not in reply.text
    assert not {"o-3", "o-4"} & set(read_outcomes(server.decisions_url)["outcome_id"])


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "phoned"}, "outcomes[0].kind"),
    ({"at": "2026-03-02T10:00:00"}, "outcomes[0].at"),
    ({"decision_id": ""}, "outcomes[0].decision_id"),
    ({"extra": 1}, "outcomes[0].extra"),
])
def test_bad_input_is_422_naming_the_field(server, decided, change, field):
    with server.client() as client:
        reply = client.post("/outcomes", json={"outcomes": [{**_outcome("o-bad", decided[0]), **change}]})
    assert reply.status_code == 422
    assert field in [p["field"] for p in reply.json()["problems"]]
    assert "o-bad" not in set(read_outcomes(server.decisions_url)["outcome_id"])


def test_triage_by_benefit_without_an_effect_estimate_says_so_and_ranks_by_risk(server, kit):
    # Patients who have used the program (a patient with no use yet is not scored, so never triaged).
    engaged = {name: 8.0 for name in ("active_days_total",) if name in kit.trained.feature_names}
    items = [kit.item(f"benefit-{i}", **engaged, **{n: float(i) for n in ("days_since_last_engagement",)
                                                     if n in kit.trained.feature_names}) for i in range(5)]
    with server.client() as client:
        reply = client.post("/triage", json={"patients": items, "capacity": 2, "policy": "benefit"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ranked_by"] == "risk" and "no effect estimate" in body["note"]
    risks = [c["risk"] for c in body["contact"]]
    assert len(risks) == 2 and risks == sorted(risks, reverse=True)
    engine = sa.create_engine(server.decisions_url)
    with engine.connect() as connection:
        # Its own rows only: the server is shared with other modules' requests.
        rows = connection.execute(sa.text("SELECT policy, propensity FROM decisions WHERE endpoint = 'triage' "
                                          "AND patient_id LIKE 'benefit-%'")).all()
    engine.dispose()
    assert len(rows) == 5 and {r[0] for r in rows} == {"benefit"} and {r[1] for r in rows} <= {0.0, 1.0}


def test_decisions_under_the_default_risk_policy_record_propensity_0_or_1(server, decided):
    engine = sa.create_engine(server.decisions_url)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT policy, propensity, draw, action, \"trigger\" FROM decisions "
                                          "WHERE endpoint = 'score'")).all()
    engine.dispose()
    assert rows and all(r[0] == "risk" and r[1] == float(r[4]) and r[2] is None and r[3] == r[4] for r in rows)


def test_no_outcome_or_patient_value_reaches_the_log(server, decided):
    assert SECRET_OUTCOME not in server.logs() and SECRET_PATIENT not in server.logs()
