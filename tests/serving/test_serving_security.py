"""The risk service's guard rails without a server: keys, the request gate, log redaction, the decision log."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sqlite3
import threading
import time
from datetime import datetime, timezone

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.auth import KeyRing, bearer_token, parse_keys
from serving.decision_log import Decision, DecisionLog, DecisionLogError, read_decisions
from serving.guard import VALIDATED, RequestGuard, field_path
from serving.logging import RedactValues, install_redaction
from serving.schemas import ScoreRequest
from models.reasons import top_indices

SECRET = "SENTINEL-9931-value"


# --- keys --------------------------------------------------------------------------------


def test_keys_come_from_the_environment_and_a_file_and_rotate(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# clients\nfile-key-1\nfile-key-2, file-key-3\n")
    ring = KeyRing.from_env({"LAPSE_API_KEYS": " env-key , ,", "LAPSE_API_KEYS_FILE": str(keys_file),
                             "LAPSE_ADMIN_KEY": "the-admin"})
    assert all(ring.is_client(k) for k in ("env-key", "file-key-1", "file-key-2", "file-key-3"))
    assert not ring.is_client("# clients") and not ring.is_client("") and not ring.is_client(None)
    assert ring.is_admin("the-admin") and not ring.is_admin("env-key") and not ring.is_client("the-admin")
    keys_file.write_text("rotated-key\n")
    os.utime(keys_file, (time.time() + 5, time.time() + 5))
    ring.refresh()
    assert ring.is_client("rotated-key") and not ring.is_client("file-key-1") and ring.is_client("env-key")


def test_without_keys_nothing_is_accepted():
    ring = KeyRing.from_env({})
    assert not ring.configured and not ring.is_client("anything") and not ring.is_admin("anything")


def test_bearer_tokens_are_parsed_strictly():
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert bearer_token("abc") is None and bearer_token("Basic abc") is None and bearer_token("Bearer ") is None
    assert parse_keys("a,b\n#c\n d ") == ["a", "b", "d"]


# --- the request gate ------------------------------------------------------------------------


def _guarded_app(max_body: int = 2048) -> tuple[RequestGuard, list]:
    seen: list = []

    async def endpoint(request: Request) -> JSONResponse:
        seen.append(request.scope.get(VALIDATED))
        await request.body()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/score", endpoint, methods=["POST"]), Route("/admin/reload", endpoint,
                                                                              methods=["POST"])])
    keys = KeyRing.from_env({"LAPSE_API_KEYS": "good", "LAPSE_ADMIN_KEY": "boss"})
    guard = RequestGuard(app, models={"/score": ScoreRequest}, admin_paths=frozenset({"/admin/reload"}),
                         open_paths=frozenset({"/livez"}), max_body_bytes=max_body, keys=keys)
    return guard, seen


def _call(guard, path: str, content: bytes | None = None, headers: dict | None = None) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://lapse") as client:
            return await client.post(path, content=content, headers=headers or {})

    return asyncio.run(go())


def test_the_gate_checks_keys_size_type_and_rules_before_the_endpoint():
    guard, seen = _guarded_app()
    body = json.dumps({"patients": [{"patient_id": "p1", "features": {"age": 30.0}}]}).encode()
    json_type = {"Content-Type": "application/json"}
    assert _call(guard, "/score", body, json_type).status_code == 401
    assert _call(guard, "/score", body, {**json_type, "Authorization": "Bearer bad"}).status_code == 401
    assert _call(guard, "/admin/reload", b"{}", {"Authorization": "Bearer good"}).status_code == 403
    assert _call(guard, "/admin/reload", b"{}", {"Authorization": "Bearer boss"}).status_code == 200
    auth = {**json_type, "Authorization": "Bearer good"}
    assert _call(guard, "/score", b"x" * 4096, auth).status_code == 413
    assert _call(guard, "/score", body, {"Authorization": "Bearer good", "Content-Type": "text/csv"}).status_code == 415
    bad = json.dumps({"patients": [{"patient_id": "p1", "features": {"age": SECRET}}]}).encode()
    refused = _call(guard, "/score", bad, auth)
    assert refused.status_code == 422 and SECRET not in refused.text
    assert refused.json()["problems"][0]["field"] == "patients[0].features.age"
    assert seen == [None]  # only the admin call reached the app so far
    ok = _call(guard, "/score", body, auth)
    assert ok.status_code == 200 and isinstance(seen[-1], ScoreRequest)


def test_the_gate_stops_a_streamed_body_at_the_limit():
    guard, seen = _guarded_app(max_body=1000)

    async def go():
        async def chunks():
            for _ in range(10):
                yield b" " * 500

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=guard), base_url="http://lapse") as client:
            return await client.post("/score", content=chunks(), headers={"Authorization": "Bearer good"})

    assert asyncio.run(go()).status_code == 413 and seen == []


def test_field_paths_read_like_the_request():
    assert field_path(("patients", 3, "events", 0, "value")) == "patients[3].events[0].value"
    assert field_path(()) == "(body)"


# --- log redaction ------------------------------------------------------------------------------


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactValues())
    logger = logging.getLogger(f"lapse.test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    return logger, stream


def test_pydantic_errors_are_logged_without_the_input():
    logger, stream = _capture()
    try:
        ScoreRequest.model_validate({"patients": [{"patient_id": SECRET}]})
    except ValidationError:
        logger.exception("Exception on /score [POST]")
    text = stream.getvalue()
    assert "Exception on /score" in text and "ValidationError" in text and "withheld" in text
    assert SECRET not in text


def test_exception_messages_chains_and_arguments_are_withheld():
    logger, stream = _capture()
    try:
        try:
            {}[SECRET]
        except KeyError as inner:
            raise ValueError(f"bad value {SECRET}") from inner
    except ValueError as outer:
        logger.error("failed: %s", outer, exc_info=True)
    logger.warning(RuntimeError(SECRET))
    text = stream.getvalue()
    assert SECRET not in text
    assert "KeyError" in text and "ValueError" in text and "RuntimeError" in text
    assert "test_serving_security.py" in text  # where it happened is kept


def test_install_redaction_covers_every_handler():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logging.getLogger("bentoml.test_redaction").addHandler(handler)
    try:
        install_redaction()
        assert any(isinstance(f, RedactValues) for f in handler.filters)
    finally:
        logging.getLogger("bentoml.test_redaction").removeHandler(handler)


# --- the decision log -----------------------------------------------------------------------------


def _decision(i: int) -> Decision:
    return Decision(request_id=f"r{i}", endpoint="score", patient_id=f"p{i}", as_of=datetime.now(timezone.utc),
                    model_name="m", model_version="1", risk=i / 100, tier="low", reasons=(("age", 0.5),),
                    trigger=False, priority="routine")


def test_concurrent_writes_are_all_committed_when_each_call_returns(tmp_path):
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log = DecisionLog(url)
    missing: list[int] = []

    def write(i: int) -> None:
        log.write([_decision(i)])
        with sqlite3.connect(tmp_path / "decisions.db") as reader:  # another connection sees it at once
            if not reader.execute("SELECT 1 FROM decisions WHERE patient_id = ?", (f"p{i}",)).fetchone():
                missing.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    rows = read_decisions(url)
    assert missing == [] and len(rows) == 40
    assert rows[0]["reasons"] == [("age", 0.5)] and set(rows[0]) >= {"decided_at", "model_version", "trigger"}


def test_a_failed_commit_is_reported_to_the_caller(tmp_path):
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    log = DecisionLog(url)
    log.write([_decision(1)])
    with sqlite3.connect(tmp_path / "decisions.db") as db:
        db.execute("DROP TABLE decisions")
    with pytest.raises(DecisionLogError):
        log.write([_decision(2)])
    log.close()


def test_sqlite_flushes_every_commit_unless_told_otherwise(tmp_path):
    for sync, expected in (("full", 2), ("normal", 1)):
        log = DecisionLog(f"sqlite:///{tmp_path / f'{sync}.db'}", sync)
        with log.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == expected
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        log.close()
    with pytest.raises(ValueError):
        DecisionLog(f"sqlite:///{tmp_path / 'x.db'}", "off")


# --- reasons ------------------------------------------------------------------------------------------


def test_top_reasons_are_the_largest_absolute_contributions_in_order():
    rng = np.random.default_rng(3)
    contributions = rng.normal(size=(50, 20))
    top = top_indices(contributions, 5)
    expected = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :5]
    assert np.array_equal(top, expected)
    assert top_indices(contributions, 40).shape == (50, 20)


# --- the command ---------------------------------------------------------------------------------------


def test_lapse_serve_refuses_to_start_without_client_keys(capsys, monkeypatch):
    from cli.main import main

    for name in ("LAPSE_API_KEYS", "LAPSE_API_KEYS_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--port", "3999"]) == 2
    assert "LAPSE_API_KEYS" in capsys.readouterr().err


# --- issue 12: hostile input, without a server ------------------------------------------------------------


def test_log_lines_escape_control_characters():
    logger, stream = _capture()
    logger.info("GET %s", "/x\nFORGED-LINE admin\x00\x1b[31m\u2028")
    text = stream.getvalue()
    assert text.count("\n") == 1 and "\x00" not in text and "\x1b" not in text and "\u2028" not in text
    assert "\\nFORGED-LINE" in text and "\\x00" in text


def test_made_up_names_are_not_repeated_in_field_paths():
    assert field_path(("patients", 0, "features", "n" * 10_000)) == "patients[0].features.(a name not shown)"
    assert field_path(("patients", 0, "features", "x\ny", "[key]")) == "patients[0].features.(a name not shown).(key)"
    assert field_path(("patients", 2, "as_of")) == "patients[2].as_of"


def test_wrong_keys_are_limited_per_client_in_a_sliding_window():
    from serving.ratelimit import FailureLimiter

    limiter = FailureLimiter(limit=3, window_s=0.5)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.1") is None
        limiter.failed("10.0.0.1")
    assert limiter.retry_after("10.0.0.1") == 1 and limiter.retry_after("10.0.0.2") is None
    time.sleep(0.6)
    assert limiter.retry_after("10.0.0.1") is None


def test_feature_ranges_follow_units_and_the_data_contract():
    from serving.bounds import FLOAT32_MAX, feature_problems, feature_ranges

    ranges = feature_ranges()
    assert ranges["age"] == (12.0, 110.0) and ranges["male"] == (0.0, 1.0) and ranges["latest_mood"] == (0.0, 10.0)
    assert ranges["sessions_7d"] == (0.0, FLOAT32_MAX) and ranges["phq9_change"] == (-27.0, 27.0)
    assert ranges["activity_slope_14d"] == (-FLOAT32_MAX, FLOAT32_MAX)
    problems = feature_problems({"sessions_7d": -1e6, "age": 40.0, "unknown_x": 1e308, "n" * 100: 1e39,
                                 "latest_mood": None}, "patients[0]")
    assert [p["field"] for p in problems] == ["patients[0].features.sessions_7d", "patients[0].features.unknown_x",
                                             "patients[0].features"]
    assert all("1e" not in p["rule"] or "3.4e38" in p["rule"] for p in problems)


def test_the_gate_scores_the_good_patients_of_a_batch_and_names_the_bad_one():
    guard, seen = _guarded_app(max_body=1 << 20)
    auth = {"Content-Type": "application/json", "Authorization": "Bearer good"}
    good = {"patient_id": "p1", "features": {"age": 30.0}}
    bad = {"patient_id": "p2", "features": {"age": -3.0}}
    reply = _call(guard, "/score", json.dumps({"patients": [good, bad]}).encode(), auth)
    assert reply.status_code == 200
    assert [p.patient_id for p in seen[-1].patients] == ["p1"]
    assert reply.json()["errors"][0]["problems"][0]["field"] == "patients[1].features.age"
    only_bad = _call(guard, "/score", json.dumps({"patients": [bad]}).encode(), auth)
    assert only_bad.status_code == 422 and len(seen) == 1
    twice = _call(guard, "/score", json.dumps({"patients": [good, good]}).encode(), auth)
    assert twice.status_code == 422 and twice.json()["problems"][0]["type"] == "duplicate_patient"


def test_the_gate_refuses_feature_names_of_the_wrong_length_with_every_other_problem():
    # The gate checks names once per batch; its refusal must still be the request model's, problem by problem.
    guard, seen = _guarded_app(max_body=1 << 20)
    auth = {"Content-Type": "application/json", "Authorization": "Bearer good"}
    good = {"patient_id": "p1", "features": {"age": 30.0}}
    long_name = "n" * 65
    body = json.dumps({"patients": [
        good, {"patient_id": "p 2", "features": {"age": 30.0}}, {"patient_id": "p3", "features": {long_name: 1.0}},
        {"patient_id": "p4"}, {"patient_id": "p5", "features": {"": 1.0, "age": 30.0}}]}).encode()
    reply = _call(guard, "/score", body, auth)
    assert reply.status_code == 422 and long_name not in reply.text and seen == []
    assert [(p["field"], p["type"]) for p in reply.json()["problems"]] == [
        ("patients[1].patient_id", "string_pattern_mismatch"),
        ("patients[2].features.(a name not shown).(key)", "string_too_long"),
        ("patients[3]", "input_source"),
        ("patients[4].features.(a name not shown).(key)", "string_too_short")]
    with pytest.raises(ValidationError) as refused:
        ScoreRequest.model_validate_json(body)
    assert reply.json()["problems"] == [{"field": field_path(e["loc"]), "rule": e["msg"], "type": e["type"]}
                                        for e in refused.value.errors()]
    only_long = json.dumps({"patients": [good, {"patient_id": "p3", "features": {long_name: 1.0}}]}).encode()
    assert _call(guard, "/score", only_long, auth).json()["problems"] == [
        {"field": "patients[1].features.(a name not shown).(key)", "rule": "String should have at most 64 characters",
         "type": "string_too_long"}]
    edge = json.dumps({"patients": [{"patient_id": "p6", "features": {"n" * 64: 1.0, "m": None}}]}).encode()
    assert _call(guard, "/score", edge, auth).status_code == 200 and seen[-1].patients[0].features["m"] is None
