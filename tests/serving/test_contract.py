"""The API contract as a platform engineer meets it, over HTTP against a real server: the OpenAPI
document, JSON errors, request ids, idempotency, the API version, GET /decisions, the signed webhook
(delivered to a real local receiver that fails once, then accepts) and the decision metrics."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from config import ServingConfig
from serving.decision_log import read_decisions
from serving.launcher import free_port, stop_service
from serving.openapi import package_version
from serving.webhook import read_attempts, read_outbox, verify

SECRET = "webhook-secret-for-tests-3f9a"


class Receiver:
    """A tiny HTTP receiver on a free loopback port: answers 500 to the first `fail_first` posts, then 204."""

    def __init__(self, fail_first: int) -> None:
        self.received: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                status = 500 if len(outer.received) < outer.fail_first else 204
                outer.received.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver(fail_first=1)
    yield r
    r.close()


@pytest.fixture(scope="module")
def server(kit, receiver, tmp_path_factory):
    # Everyone is triggered (trigger_risk 0), so every answer makes a webhook delivery.
    tiers = tmp_path_factory.mktemp("contract") / "tiers.json"
    tiers.write_text(json.dumps({"tiers": [{"name": "high", "min_risk": 0.5}, {"name": "low", "min_risk": 0.0}],
                                 "trigger_risk": 0.0}))
    config = ServingConfig(tiers_source=str(tiers), webhook_url=receiver.url, webhook_secret=SECRET,
                           webhook_backoff_s=0.3, webhook_attempts=4)
    running = kit.launch("contract", config)
    yield running
    stop_service(running.process)


def _score(server, kit, *ids: str, headers: dict[str, str] | None = None, path: str = "/score") -> httpx.Response:
    body = {"patients": [kit.item(i) for i in ids]}
    return httpx.post(server.url + path, json=body, headers={**kit.auth, **(headers or {})}, timeout=60)


def test_the_spec_names_lapse_its_version_security_statuses_and_enums(server):
    spec = httpx.get(server.url + "/docs.json").json()
    assert spec["info"]["title"] == "lapse risk service"
    assert spec["info"]["version"] == package_version() != "None"
    assert "bentoml" not in spec["info"]["description"].lower()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    score = spec["paths"]["/score"]["post"]
    assert score["security"] == [{"bearer": []}]
    assert set(score["responses"]) == {"200", "401", "409", "413", "415", "422", "429", "503", "504"}
    assert score["responses"]["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"}
    assert "problems" in spec["components"]["schemas"]["ErrorBody"]["properties"]
    assert {p["name"] for p in score["parameters"]} >= {"X-Request-ID", "Idempotency-Key"}
    assert spec["paths"]["/livez"]["get"]["security"] == []
    assert set(spec["paths"]["/livez"]["get"]["responses"]) == {"200"}
    assert "403" in spec["paths"]["/admin/reload"]["post"]["responses"]
    tier = spec["components"]["schemas"]["PatientScore"]["properties"]["tier"]
    assert tier["enum"] == ["high", "low"]
    decisions = spec["paths"]["/decisions"]["get"]
    assert {p["name"] for p in decisions["parameters"]} >= {"patient_id", "since", "until", "cursor", "limit"}


def test_404_and_405_are_json(server, kit):
    missing = httpx.get(server.url + "/no-such-thing", headers=kit.auth)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json" and missing.json() == {"error": "not found"}
    wrong = httpx.get(server.url + "/score", headers=kit.auth)
    assert wrong.status_code == 405 and "error" in wrong.json()


def test_every_reply_has_a_request_id_and_the_callers_is_kept_and_stored(server, kit):
    mine = _score(server, kit, "rid-1", headers={"X-Request-ID": "platform-req-0001"})
    assert mine.status_code == 200 and mine.headers["x-request-id"] == "platform-req-0001"
    rows = [r for r in read_decisions(server.decisions_url) if r["patient_id"] == "rid-1"]
    assert [r["request_id"] for r in rows] == ["platform-req-0001"]
    insane = _score(server, kit, "rid-2", headers={"X-Request-ID": "x" * 41})
    assert insane.headers["x-request-id"] != "x" * 41 and len(insane.headers["x-request-id"]) == 32
    refused = httpx.post(server.url + "/score", json={})
    assert refused.status_code == 401 and len(refused.headers["x-request-id"]) == 32
    assert refused.headers["api-version"] == "1"


def test_the_v1_path_answers_like_todays_path(server, kit):
    versioned = _score(server, kit, "v1-patient", path="/v1/score")
    assert versioned.status_code == 200 and versioned.headers["api-version"] == "1"
    assert versioned.json()["results"][0]["patient_id"] == "v1-patient"
    assert httpx.get(server.url + "/v1/model", headers=kit.auth).status_code == 200


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer_and_writes_no_second_decision(server, kit):
    key = {"Idempotency-Key": "order-7781-attempt"}
    first = _score(server, kit, "idem-1", headers=key)
    again = _score(server, kit, "idem-1", headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    rows = [r for r in read_decisions(server.decisions_url) if r["patient_id"] == "idem-1"]
    assert len(rows) == 1
    # Its support trigger has one delivery, stored with the decision and the stored answer: the replay makes none.
    assert [d["request_id"] for d in read_outbox(server.decisions_url)].count(rows[0]["request_id"]) == 1
    other = _score(server, kit, "idem-2", headers=key)
    assert other.status_code == 422 and other.json()["problems"][0]["field"] == "Idempotency-Key"
    assert not [r for r in read_decisions(server.decisions_url) if r["patient_id"] == "idem-2"]
    # The same key on another endpoint is another key.
    explained = httpx.post(server.url + "/explain", json={"patient": kit.item("idem-1")},
                           headers={**kit.auth, **key}, timeout=60)
    assert explained.status_code == 200


def test_get_decisions_filters_by_patient_and_time_and_pages_in_a_stable_order(server, kit):
    before = httpx.get(server.url + "/decisions", params={"limit": 1}, headers=kit.auth)
    assert before.status_code == 200
    started = time.time()
    for n in range(5):
        assert _score(server, kit, f"page-{n}", "page-x").status_code == 200
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started - 1))
    seen, cursor = [], None
    while True:
        params = {"patient_id": "page-x", "limit": 2, "since": since, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(server.url + "/decisions", params=params, headers=kit.auth).json()
        seen += page["decisions"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [d["patient_id"] for d in seen] == ["page-x"] * 5
    ids = [d["id"] for d in seen]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert all(d["trigger"] and d["tier"] in ("high", "low") and d["reasons"] for d in seen)
    future = httpx.get(server.url + "/decisions", params={"since": "2999-01-01T00:00:00Z"}, headers=kit.auth)
    assert future.json() == {"decisions": [], "next_cursor": None}
    past = httpx.get(server.url + "/decisions", params={"patient_id": "page-x", "until": since}, headers=kit.auth)
    assert past.json()["decisions"] == []


def test_get_decisions_refuses_bad_queries_and_strangers(server, kit):
    bad = httpx.get(server.url + "/decisions", params={"limit": 0, "since": "yesterday"}, headers=kit.auth)
    assert bad.status_code == 422
    assert {p["field"] for p in bad.json()["problems"]} == {"limit", "since"}
    assert "yesterday" not in bad.text
    assert httpx.get(server.url + "/decisions").status_code == 401


def test_triggers_reach_the_webhook_signed_and_retried_after_a_failure(server, kit, receiver):
    reply = _score(server, kit, "hook-1", "hook-2", headers={"X-Request-ID": "hook-request-1"})
    assert reply.status_code == 200
    deadline = time.monotonic() + 30
    mine: list = []
    while time.monotonic() < deadline:
        mine = [(h, b, s) for h, b, s in receiver.received if json.loads(b)["request_id"] == "hook-request-1"]
        if any(s == 204 for _, _, s in mine) or (mine and receiver.received[0][2] == 500 and len(mine) >= 2):
            break
        time.sleep(0.2)
    assert mine, "no delivery arrived"
    headers, body, _ = mine[-1]
    assert verify(SECRET, headers["x-lapse-timestamp"], body, headers["x-lapse-signature"])
    assert not verify("another-secret", headers["x-lapse-timestamp"], body, headers["x-lapse-signature"])
    payload = json.loads(body)
    assert payload["event"] == "support.triggered"
    assert [d["patient_id"] for d in payload["decisions"]] == ["hook-1", "hook-2"]
    # The receiver refused the very first delivery it got: that delivery was tried again and arrived.
    first_id = json.loads(receiver.received[0][1])["delivery_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        attempts = [a for a in read_attempts(server.decisions_url) if a["delivery_id"] == first_id]
        if any(a["outcome"] == "delivered" for a in attempts):
            break
        time.sleep(0.2)
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in attempts] == [
        (1, 500, "retrying"), (2, 204, "delivered")]
    # The delivery was kept in the outbox, stored with its decisions, until it was done.
    kept = {row["delivery_id"]: row for row in read_outbox(server.decisions_url)}
    assert (kept[first_id]["state"], kept[first_id]["attempts"]) == ("delivered", 2)


def test_metrics_count_scores_tiers_triggers_refusals_and_missing_features(server, kit):
    name = kit.trained.feature_names[0]
    item = kit.item("metrics-1", **{name: None})
    assert httpx.post(server.url + "/score", json={"patients": [item]}, headers=kit.auth).status_code == 200
    assert httpx.post(server.url + "/score", json={"patients": []}, headers=kit.auth).status_code == 422
    batch = [kit.item("metrics-2"), kit.item("metrics-3", sessions_7d=-5.0)]
    partial = httpx.post(server.url + "/score", json={"patients": batch}, headers=kit.auth)
    assert partial.status_code == 200 and partial.json()["errors"][0]["patient_id"] == "metrics-3"
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {kit.admin}"}).text
    assert 'lapse_risk_score_bucket{endpoint="score"' in text
    assert 'lapse_decisions_total{endpoint="score",tier=' in text
    assert 'lapse_support_triggers_total{endpoint="score"' in text
    assert 'lapse_refused_requests_total{route="/score",status="422"}' in text
    assert 'lapse_left_out_patients_total{route="/score"} 1.0' in text
    missing = [line for line in text.splitlines() if line.startswith(f'lapse_feature_missing_total{{feature="{name}"}}')]
    assert missing and float(missing[0].split()[-1]) >= 1
    rows = [line for line in text.splitlines() if line.startswith("lapse_scored_rows_total ")]
    assert rows and float(rows[0].split()[-1]) >= 2


def test_schemathesis_finds_no_server_error_and_no_undocumented_status(server, kit):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import status_code_conformance

    schema = schemathesis.openapi.from_url(server.url + "/docs.json")
    operations = [("/score", "POST"), ("/explain", "POST"), ("/triage", "POST"), ("/model", "GET"),
                  ("/decisions", "GET"), ("/admin/reload", "POST")]
    for path, method in operations:
        strategy = schema[path][method].as_strategy()

        @settings(max_examples=20, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def conforms(case):
            response = case.call(base_url=server.url, headers=kit.auth, timeout=60)
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])

        conforms()


def _metric_values(text: str, prefix: str) -> dict[str, float]:
    """Every sample of /metrics whose line starts with `prefix`, by its labels."""
    return {line.split(" ")[0]: float(line.split(" ")[-1]) for line in text.splitlines() if line.startswith(prefix)}


def test_metrics_count_every_patient_of_a_batch_in_its_bucket_tier_and_priority(server, kit):
    names = kit.trained.feature_names
    varied = [n for n in ("sessions_7d", "days_since_last_engagement", "active_days_total") if n in names]
    batch = [kit.item(f"bulk-{i}", **{n: float(1 + (i * (k + 3)) % 9) for k, n in enumerate(varied)})
             for i in range(40)]
    auth = {"Authorization": f"Bearer {kit.admin}"}
    before = httpx.get(server.url + "/metrics", headers=auth).text
    reply = httpx.post(server.url + "/score", json={"patients": batch}, headers=kit.auth)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    count = 'lapse_risk_score_count{endpoint="score"}'
    deadline = time.monotonic() + 30
    while True:  # the metrics are counted once the reply is sent
        after = httpx.get(server.url + "/metrics", headers=auth).text
        done = _metric_values(after, count).get(count, 0) - _metric_values(before, count).get(count, 0)
        if done >= len(batch) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert done == len(batch)

    def delta(prefix: str) -> dict[str, float]:
        old = _metric_values(before, prefix)
        return {k: v - old.get(k, 0.0) for k, v in _metric_values(after, prefix).items() if v != old.get(k, 0.0)}

    buckets = delta('lapse_risk_score_bucket{endpoint="score"')
    for bound in ("0.05", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "1.0", "+Inf"):
        expected = sum(r["risk"] <= float(bound) for r in results)
        assert buckets.get(f'lapse_risk_score_bucket{{endpoint="score",le="{bound}"}}', 0.0) == expected
    total = delta('lapse_risk_score_sum{endpoint="score"}')['lapse_risk_score_sum{endpoint="score"}']
    assert total == pytest.approx(sum(r["risk"] for r in results), rel=1e-9)
    tiers = {r["tier"] for r in results}
    assert delta('lapse_decisions_total{endpoint="score"') == {
        f'lapse_decisions_total{{endpoint="score",tier="{t}"}}': sum(r["tier"] == t for r in results) for t in tiers}
    priorities = {r["support"]["priority"] for r in results if r["support"]["trigger"]}
    assert delta('lapse_support_triggers_total{endpoint="score"') == {
        f'lapse_support_triggers_total{{endpoint="score",priority="{p}"}}':
            sum(r["support"]["trigger"] and r["support"]["priority"] == p for r in results) for p in priorities}
