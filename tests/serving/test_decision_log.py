"""The decision log writes every decision it is given, once, field for field, whatever the size of the group."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from serving.decision_log import Decision, DecisionLog, DecisionLogError, read_decisions

from .test_decision_log_faults import _lock

# More rows than one INSERT statement holds (1,024), and a remainder that does not fill a statement.
BIG = 2_500


def _decisions(request_id: str, count: int) -> list[Decision]:
    at = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    out = []
    for i in range(count):
        randomized = i % 3 == 0
        out.append(Decision(request_id=request_id, endpoint="score", patient_id=f"{request_id}-{i}",
                            as_of=at + timedelta(minutes=i), model_name="lapse-dropout", model_version="7",
                            risk=i / (count + 1), tier=("high", "low")[i % 2],
                            reasons=((f"feature_{i % 5}", 0.25 - i / 1000), ("sessions_7d", -0.5)),
                            trigger=i % 2 == 0, priority=("soon", "routine")[i % 2],
                            program=None if i % 4 == 0 else f"program-{i % 4}",
                            policy="randomized" if randomized else None,
                            policy_version="v1" if randomized else None,
                            propensity=0.5 if randomized else None, draw=i / count if randomized else None,
                            status=("scored", "not_eligible")[i % 7 == 0]))
    return out


def _expected(decision: Decision) -> dict[str, object]:
    as_of = decision.as_of.astimezone(timezone.utc).isoformat()
    return {"request_id": decision.request_id, "endpoint": decision.endpoint, "patient_id": decision.patient_id,
            "as_of": as_of, "model_name": decision.model_name, "model_version": decision.model_version,
            "risk": decision.risk, "tier": decision.tier, "reasons": [tuple(r) for r in decision.reasons],
            "trigger": decision.trigger, "priority": decision.priority, "program": decision.program,
            "policy": decision.policy, "policy_version": decision.policy_version,
            "propensity": decision.propensity, "draw": decision.draw,
            "action": decision.trigger if decision.policy is not None else None, "status": decision.status}


@pytest.mark.parametrize("hand_over", [False, True])
def test_groups_of_any_size_are_written_once_each_field_for_field_in_order(tmp_path, hand_over):
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log = DecisionLog(url)
    sent = [_decisions("one", 1), _decisions("three", 3), _decisions("big", BIG), _decisions("exact", 1024)]
    try:
        for decisions in sent:
            assert log.submit(decisions, hand_over=hand_over).result(timeout=30) == len(decisions)
        # Requests submitted together are committed in one group, across statements.
        together = [_decisions(f"together{k}", 700 + k) for k in range(3)]
        futures = []
        starts = threading.Barrier(len(together))

        def send(decisions: list[Decision]) -> None:
            starts.wait()
            futures.append(log.submit(decisions, hand_over=hand_over))

        threads = [threading.Thread(target=send, args=(d,)) for d in together]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(f.result(timeout=30) for f in futures) == [700, 701, 702]
    finally:
        log.close()
    rows = read_decisions(url)
    written = {row["patient_id"]: row for row in rows}
    expected = [d for decisions in sent + together for d in decisions]
    assert len(rows) == len(expected) == len(written)
    for decision in expected:
        row = written[decision.patient_id]
        assert {key: row[key] for key in _expected(decision)} == _expected(decision), decision.patient_id
    # Each request's rows are in the order sent, one commit time each, and the log grows in commit order.
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids)
    for decisions in sent + together:
        mine = [row for row in rows if row["request_id"] == decisions[0].request_id]
        assert [row["patient_id"] for row in mine] == [d.patient_id for d in decisions]
        assert len({row["decided_at"] for row in mine}) == 1
    assert [row["request_id"] for row in rows[:1 + 3 + BIG + 1024]] == \
        ["one"] + ["three"] * 3 + ["big"] * BIG + ["exact"] * 1024


def test_a_caller_handing_over_to_a_failing_commit_learns_of_the_failure(tmp_path):
    path = tmp_path / "decisions.db"
    log = DecisionLog(f"sqlite:///{path}", busy_ms=300, retry_s=0.2)
    try:
        assert log.write(_decisions("before", 2)) == 2
        holder = _lock(path)
        future = log.submit(_decisions("locked", 50), hand_over=True)
        with pytest.raises(DecisionLogError):
            future.result(timeout=10)
        holder.rollback()
        holder.close()
    finally:
        log.close()
    assert [row["request_id"] for row in read_decisions(f"sqlite:///{path}")] == ["before", "before"]
