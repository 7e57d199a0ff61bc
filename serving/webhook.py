"""An optional webhook: support triggers are POSTed to the platform, signed, retried, never blocking a reply.

When `webhook_url` is set, every answer whose decisions trigger support (committed to the decision
log first) queues one delivery: a JSON body `{"event": "support.triggered", "delivery_id", "request_id",
"decisions": [{patient_id, as_of, risk, tier, priority, endpoint, model_name, model_version}]}`.

- Signed: `X-Lapse-Signature: sha256=<hex HMAC-SHA256 of "<X-Lapse-Timestamp>.<body>" with webhook_secret>`;
  the receiver recomputes it and refuses old timestamps (replays).
- Retried: a delivery that fails (an error, a timeout or a non-2xx status) is tried again after
  `webhook_backoff_s`, then twice as long each time, up to `webhook_attempts` attempts.
- In the background: one sender thread with a queue ordered by due time; the reply never waits for it.
- Recorded: every attempt is a row of table `webhook_attempts` in the decision-log database
  (delivery id, request id, attempt number, time, HTTP status or error type, outcome); bodies are not stored.
"""

from __future__ import annotations

import heapq
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from hashlib import sha256

import httpx
import sqlalchemy as sa

from .decision_log import Decision, make_engine

METADATA = sa.MetaData()
ATTEMPTS = sa.Table(
    "webhook_attempts",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(40), nullable=False, index=True),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.String(40), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(80), nullable=True),
    # "delivered", "retrying" or "gave_up"
    sa.Column("outcome", sa.String(20), nullable=False),
)
SIGNATURE_HEADER = "X-Lapse-Signature"
TIMESTAMP_HEADER = "X-Lapse-Timestamp"
DELIVERY_HEADER = "X-Lapse-Delivery"
log = logging.getLogger("lapse.serving.webhook")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is the right one (what a receiver checks)."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(order=True)
class _Delivery:
    due: float
    delivery_id: str = field(compare=False)
    request_id: str = field(compare=False)
    body: bytes = field(compare=False)
    attempt: int = field(default=1, compare=False)


def payload(delivery_id: str, request_id: str, decisions: Sequence[Decision]) -> bytes:
    """The JSON body of one delivery."""
    return json.dumps({
        "event": "support.triggered", "delivery_id": delivery_id, "request_id": request_id,
        "decisions": [{"patient_id": d.patient_id, "as_of": d.as_of.isoformat(), "risk": d.risk, "tier": d.tier,
                       "priority": d.priority, "endpoint": d.endpoint, "model_name": d.model_name,
                       "model_version": d.model_version} for d in decisions],
    }).encode()


class Webhook:
    """Queue triggered decisions and deliver them from one background thread."""

    def __init__(self, url: str, secret: str, db_url: str, attempts: int, backoff_s: float, timeout_s: float) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.engine = make_engine(db_url)
        METADATA.create_all(self.engine)
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._due: list[_Delivery] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def notify(self, decisions: Sequence[Decision]) -> str | None:
        """Queue a delivery for the triggered ones among `decisions`; its id, or None when none triggered."""
        triggered = [d for d in decisions if d.trigger]
        if not triggered:
            return None
        delivery_id = uuid.uuid4().hex
        delivery = _Delivery(time.monotonic(), delivery_id, triggered[0].request_id,
                             payload(delivery_id, triggered[0].request_id, triggered))
        with self._wake:
            heapq.heappush(self._due, delivery)
            self._wake.notify()
        return delivery_id

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopping and (not self._due or self._due[0].due > time.monotonic()):
                    self._wake.wait(timeout=None if not self._due else self._due[0].due - time.monotonic())
                if self._stopping:
                    return
                delivery = heapq.heappop(self._due)
            try:
                self._attempt(delivery)
            except Exception as error:  # noqa: BLE001 - the sender must outlive any failure
                log.error("webhook: delivery attempt failed unexpectedly (%s)", type(error).__name__)

    def _attempt(self, delivery: _Delivery) -> None:
        timestamp = str(int(time.time()))
        status: int | None = None
        error: str | None = None
        try:
            response = self._client.post(self.url, content=delivery.body, headers={
                "content-type": "application/json", TIMESTAMP_HEADER: timestamp, DELIVERY_HEADER: delivery.delivery_id,
                SIGNATURE_HEADER: sign(self.secret, timestamp, delivery.body)})
            status = response.status_code
        except httpx.HTTPError as failure:
            error = type(failure).__name__
        ok = status is not None and 200 <= status < 300
        last = delivery.attempt >= self.attempts
        outcome = "delivered" if ok else ("gave_up" if last else "retrying")
        self._record(delivery, status, error, outcome)
        if outcome == "gave_up":
            log.warning("webhook: delivery %s gave up after %d attempts", delivery.delivery_id, delivery.attempt)
        if outcome == "retrying":
            wait = self.backoff_s * 2 ** (delivery.attempt - 1)
            again = _Delivery(time.monotonic() + wait, delivery.delivery_id, delivery.request_id, delivery.body,
                              delivery.attempt + 1)
            with self._wake:
                heapq.heappush(self._due, again)

    def _record(self, delivery: _Delivery, status: int | None, error: str | None, outcome: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(ATTEMPTS.insert().values(
                delivery_id=delivery.delivery_id, request_id=delivery.request_id, attempt=delivery.attempt,
                attempted_at=datetime.now(timezone.utc).isoformat(), status_code=status, error=error, outcome=outcome))

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)
        self._client.close()
        self.engine.dispose()


def read_attempts(url: str) -> list[dict[str, object]]:
    """Every recorded delivery attempt, oldest first."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(ATTEMPTS.name):
                return []
            return [dict(r) for r in connection.execute(sa.select(ATTEMPTS).order_by(ATTEMPTS.c.id)).mappings()]
    finally:
        engine.dispose()
