"""The webhook sender on its own, against a real local receiver: it gives up after the configured attempts,
waits longer before each retry, records every attempt, never makes the caller wait, and keeps each delivery in
the outbox until it is done: a stopped or dead worker's deliveries are sent by another, once, and a delivery
whose decisions were not committed is never sent."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from serving.decision_log import Decision
from serving.launcher import free_port
from serving.webhook import OUTBOX, Webhook, read_attempts, read_outbox


def _receiver(status: int | list[int], delay_s: float = 0.0) -> tuple[ThreadingHTTPServer, list[bytes]]:
    """A receiver answering `status` (a one-item list: the test may change it)."""
    got: list[bytes] = []
    answer = status if isinstance(status, list) else [status]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(self.rfile.read(int(self.headers["content-length"])))
            time.sleep(delay_s)
            self.send_response(answer[0])
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, got


def _decision(patient_id: str, trigger: bool) -> Decision:
    return Decision("req-w", "score", patient_id, datetime(2025, 10, 1, tzinfo=timezone.utc), "lapse-dropout", "1",
                    0.8, "high", (), trigger, "urgent" if trigger else "routine")


def test_a_receiver_that_always_fails_gets_the_configured_attempts_with_growing_waits(tmp_path):
    server, got = _receiver(503)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}/", "s3cret", url, attempts=3, backoff_s=0.2,
                   timeout_s=5)
    try:
        assert hook.notify([_decision("w-1", False)]) is None  # nothing triggered: nothing sent
        delivery = hook.notify([_decision("w-1", True), _decision("w-2", False)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(read_attempts(url)) < 3:
            time.sleep(0.1)
    finally:
        hook.close()
        server.shutdown()
    rows = read_attempts(url)
    assert [(r["delivery_id"], r["attempt"], r["status_code"], r["outcome"]) for r in rows] == [
        (delivery, 1, 503, "retrying"), (delivery, 2, 503, "retrying"), (delivery, 3, 503, "gave_up")]
    times = [datetime.fromisoformat(r["attempted_at"]).timestamp() for r in rows]
    assert times[1] - times[0] >= 0.18 and times[2] - times[1] >= 0.38
    assert len(got) == 3 and b'"w-2"' not in got[0] and b'"w-1"' in got[0]


def test_notify_returns_while_the_receiver_is_still_answering(tmp_path):
    server, got = _receiver(200, delay_s=2.0)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}/", "s3cret", url, attempts=1, backoff_s=1,
                   timeout_s=10)
    try:
        hook.notify([_decision("w-3", True)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not got:
            time.sleep(0.05)
        assert got and read_attempts(url) == []  # the receiver has the delivery and has not answered yet
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not read_attempts(url):
            time.sleep(0.1)
        assert [r["outcome"] for r in read_attempts(url)] == ["delivered"]
    finally:
        hook.close()
        server.shutdown()


def _until(check, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)


def test_a_delivery_left_by_a_stopped_worker_is_sent_by_the_next_one(tmp_path):
    status = [503]
    server, got = _receiver(status)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    target = f"http://127.0.0.1:{server.server_address[1]}/"
    first = Webhook(target, "s3cret", url, attempts=5, backoff_s=1.0, timeout_s=5)
    try:
        delivery = first.notify([_decision("w-4", True)])
        _until(lambda: len(read_attempts(url)) == 1)
    finally:
        first.close()  # the worker stops between two attempts
    status[0] = 200
    second = Webhook(target, "s3cret", url, attempts=5, backoff_s=1.0, timeout_s=5)
    try:
        _until(lambda: any(r["outcome"] == "delivered" for r in read_attempts(url)))
    finally:
        second.close()
        server.shutdown()
    assert [(r["delivery_id"], r["attempt"], r["status_code"], r["outcome"]) for r in read_attempts(url)] == [
        (delivery, 1, 503, "retrying"), (delivery, 2, 200, "delivered")]
    assert len(got) == 2 and got[0] == got[1]
    [row] = read_outbox(url)
    assert (row["delivery_id"], row["state"], row["attempts"], row["owner"]) == (delivery, "delivered", 2, second.owner)
    engine = sa.create_engine(url)
    with engine.connect() as connection:  # a done delivery keeps no body
        assert connection.execute(sa.select(OUTBOX.c.body)).scalar_one() is None
    engine.dispose()


def test_a_delivery_whose_worker_died_after_the_commit_is_sent_once_by_another(tmp_path):
    server, got = _receiver(200)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    target = f"http://127.0.0.1:{server.server_address[1]}/"
    hooks = [Webhook(target, "s3cret", url, attempts=3, backoff_s=1.0, timeout_s=5, lease_s=1.0, sweep_s=0.2)
             for _ in range(2)]
    try:
        dead = hooks[0]
        delivery = dead.prepare([_decision("w-5", True)])
        with dead.engine.begin() as connection:  # committed with its decisions, never started: the worker died
            dead.store(delivery, connection)
        _until(lambda: bool(read_attempts(url)))
        time.sleep(1.5)  # past another lease and several sweeps: nobody sends it again
    finally:
        for hook in hooks:
            hook.close()
        server.shutdown()
    assert [(r["delivery_id"], r["attempt"], r["outcome"]) for r in read_attempts(url)] == [
        (delivery.delivery_id, 1, "delivered")]
    assert len(got) == 1 and b'"w-5"' in got[0]


def test_a_delivery_whose_transaction_rolled_back_is_never_sent(tmp_path):
    server, got = _receiver(200)
    url = f"sqlite:///{tmp_path / 'decisions.db'}"
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}/", "s3cret", url, attempts=3, backoff_s=1.0,
                   timeout_s=5, lease_s=0.2, sweep_s=0.1)
    try:
        delivery = hook.prepare([_decision("w-6", True)])
        with pytest.raises(RuntimeError):
            with hook.engine.begin() as connection:
                hook.store(delivery, connection)
                raise RuntimeError("the decisions' commit failed")
        time.sleep(1.0)
    finally:
        hook.close()
        server.shutdown()
    assert read_outbox(url) == [] and got == [] and read_attempts(url) == []
