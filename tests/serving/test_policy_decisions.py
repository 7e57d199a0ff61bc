"""The trigger policy on a real server: decisions carry policy, version, propensity and draw; /triage keeps capacity."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from config import OutreachConfig
from outreach.effect import EffectResult, estimate_effect
from outreach.effect_job import write_result
from outreach.policy import Candidate, hmac_uniform
from outreach.settings import EffectColumns
from serving.launcher import stop_service
from serving.settings import OUTREACH_ENV

SECRET = "mrt-secret-test-6d2a"
AS_OF = "2026-03-02T09:00:00+00:00"
POLICY = OutreachConfig(policy="randomized", band_low=0.0, band_high=1.0, probability=0.5, capacity_per_coach=4)


@pytest.fixture(scope="module")
def effect_file(kit) -> str:
    """effect.json as `lapse effect` writes it, from a randomized trial where a call helps more at higher risk."""
    rng = np.random.default_rng(5)
    n = 4000
    risk = rng.uniform(0, 1, n)
    action = rng.random(n) < 0.5
    outcome = rng.random(n) < 0.3 + action * (0.05 + 0.3 * risk)
    mrt = pd.DataFrame({"unit": [f"u{i % 800}" for i in range(n)], "time": np.arange(n) // 800, "action": action,
                        "probability": 0.5, "outcome": outcome.astype(int), "tier": "", "risk": risk})
    result = estimate_effect(mrt, columns=EffectColumns(tier=""), moderators=("risk",))
    assert result.moderators[0].slope.estimate > 0
    json_path, _ = write_result(result, kit.trained.root / "policy-effect")
    return str(json_path)


@pytest.fixture(scope="module")
def server(kit, effect_file):
    policy = POLICY.model_copy(update={"effect_file": effect_file})
    running = kit.launch("policy", extra_env={OUTREACH_ENV: policy.model_dump_json(), "LAPSE_OUTREACH_SECRET": SECRET})
    yield running
    stop_service(running.process)


def _items(kit, n: int, prefix: str, coaches: int = 0) -> list[dict]:
    """Items with different risks (days of silence varied, within the engagement window so every patient is
    in the population the model was trained on), all decided at AS_OF."""
    silent = [name for name in ("days_since_last_engagement", "days_since_last_session")
              if name in kit.trained.feature_names]
    enrolled = {name: value for name, value in (("days_since_enrolment", 40.0), ("active_days_total", 12.0))
                if name in kit.trained.feature_names}
    items = []
    for i in range(n):
        values = {**enrolled, **{name: float(2 * (i % 7)) for name in silent}}
        item = {**kit.item(f"{prefix}-{i}", **values), "as_of": AS_OF}
        if coaches:
            item["coach"] = f"coach-{i % coaches}"
        items.append(item)
    return items


def _logged(server, endpoint: str) -> list[dict]:
    engine = sa.create_engine(server.decisions_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM decisions WHERE endpoint = :e ORDER BY id"),
                                      {"e": endpoint}).mappings().all()
        return [dict(row) for row in rows]
    finally:
        engine.dispose()


def test_score_decisions_carry_the_randomized_policy_and_are_reproducible(server, kit):
    items = _items(kit, 40, "rand")
    with server.client() as client:
        first = client.post("/score", json={"patients": items})
        again = client.post("/score", json={"patients": items})
    assert first.status_code == 200, first.text
    rows = _logged(server, "score")
    assert len(rows) == 80
    moment = datetime.fromisoformat(AS_OF)
    for row in rows:
        assert row["policy"] == "randomized" and row["policy_version"].startswith("randomized-")
        assert row["propensity"] == 0.5
        # Anyone with the secret can recompute the draw; the action is "draw below p".
        assert row["draw"] == pytest.approx(hmac_uniform(SECRET, row["patient_id"], moment))
        assert bool(row["action"]) == (row["draw"] < 0.5) == bool(row["trigger"])
    # The same decision gets the same draw and action every time.
    assert [r["action"] for r in rows[:40]] == [r["action"] for r in rows[40:]]
    triggers = [r["support"]["trigger"] for r in first.json()["results"]]
    assert triggers == [bool(r["action"]) for r in rows[:40]]
    assert triggers == [r["support"]["trigger"] for r in again.json()["results"]]
    assert 0 < sum(triggers) < 40
    assert SECRET not in server.logs()


def test_triage_keeps_coach_and_day_capacity_and_records_realized_propensities(server, kit):
    items = _items(kit, 60, "day", coaches=3)
    with server.client() as client:
        reply = client.post("/triage", json={"patients": items, "capacity": 10})
    assert reply.status_code == 200, reply.text
    contact = reply.json()["contact"]
    assert len(contact) <= 10
    coach_of = {item["patient_id"]: item["coach"] for item in items}
    assert max(Counter(coach_of[c["patient_id"]] for c in contact).values()) <= 4
    assert all(c["support"]["trigger"] for c in contact)
    rows = _logged(server, "triage")
    assert len(rows) == 60
    randomized = [r["propensity"] for r in rows if r["propensity"] > 0]
    assert randomized and all(0.2 <= p <= 0.8 for p in randomized)
    # Capacity binds (4 per coach of 20 eligible): realized chances fall below p down each coach's ranking.
    assert min(randomized) < 0.5
    # Patients not randomized that day are recorded with propensity 0 and not contacted.
    assert all(not r["action"] for r in rows if r["propensity"] == 0)
    assert {c["patient_id"] for c in contact} == {r["patient_id"] for r in rows if r["action"]}


def test_triage_by_benefit_ranks_by_the_effect_estimate(server, kit, effect_file):
    items = _items(kit, 12, "benefit")
    with server.client() as client:
        reply = client.post("/triage", json={"patients": items, "capacity": 3, "policy": "benefit"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["ranked_by"] == "expected benefit" and body["note"] == ""
    effect = EffectResult.model_validate_json(open(effect_file).read())
    moment = datetime.fromisoformat(AS_OF)
    benefit = {c["patient_id"]: effect.expected_benefit(
        Candidate(c["patient_id"], moment, c["risk"], c["tier"], moderators={"risk": c["risk"]}))
               for c in body["contact"]}
    assert len(body["contact"]) <= 3 and all(value > 0 for value in benefit.values())
    assert list(benefit.values()) == sorted(benefit.values(), reverse=True)
    rows = _logged(server, "triage")[-12:]
    assert {r["policy"] for r in rows} == {"benefit"} and {r["propensity"] for r in rows} <= {0.0, 1.0}
