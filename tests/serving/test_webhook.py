"""The webhook sender on its own, against a real local receiver: it gives up after the configured attempts,
waits longer before each retry, records every attempt, and never makes the caller wait."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from serving.decision_log import Decision
from serving.launcher import free_port
from serving.webhook import Webhook, read_attempts


def _receiver(status: int, delay_s: float = 0.0) -> tuple[ThreadingHTTPServer, list[bytes]]:
    got: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            got.append(self.rfile.read(int(self.headers["content-length"])))
            time.sleep(delay_s)
            self.send_response(status)
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
