"""An optional webhook: support triggers are POSTed to the platform, signed, retried, never blocking a reply.

When `webhook_url` is set, every answer whose decisions trigger support (committed to the decision
log first) queues one delivery: a JSON body `{"event": "support.triggered", "delivery_id", "request_id",
"decisions": [{patient_id, as_of, risk, tier, priority, endpoint, model_name, model_version}]}`.

- Signed: `X-Lapse-Signature: sha256=<hex HMAC-SHA256 of "<X-Lapse-Timestamp>.<body>" with webhook_secret>`;
  the receiver recomputes it and refuses old timestamps (replays).
- Retried: a delivery that fails (an error, a timeout or a non-2xx status) is tried again after
  `webhook_backoff_s`, then twice as long each time, up to `webhook_attempts` attempts.
- Kept until done: the delivery is a row of table `webhook_outbox` in the decision-log database, written in
  the transaction that commits the decisions (`store`), so a committed trigger always has its delivery, and
  a delivery survives the worker that made it. The worker sends it (`start`) and holds it under a lease;
  each worker also sweeps the outbox (at start, then every `SWEEP_S`) and takes over pending deliveries
  whose lease has run out (their worker stopped or died), claiming each in one UPDATE so that only one
  worker sends it. The body is dropped from the row once the delivery is delivered or given up.
- In the background: one sender thread per worker with a queue ordered by due time; the reply never waits.
- Recorded: every attempt is a row of table `webhook_attempts` (delivery id, request id, attempt number,
  time, HTTP status or error type, outcome), written with the outbox row's new state.
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

from outreach.outcomes import create_tables

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
OUTBOX = sa.Table(
    "webhook_outbox",
    METADATA,
    sa.Column("delivery_id", sa.String(40), primary_key=True),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    # Attempts made so far, and the wall-clock time (Unix seconds) the next one is due.
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    # "pending", "delivered" or "gave_up"
    sa.Column("state", sa.String(20), nullable=False, index=True),
    # The worker sending it, and until when (Unix seconds) it holds it: past that, any worker may take it over.
    sa.Column("owner", sa.String(40), nullable=False),
    sa.Column("held_until", sa.Float, nullable=False),
)
# How often each worker looks for pending deliveries whose worker is gone.
SWEEP_S = 10.0
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
class Delivery:
    """One delivery of triggered decisions; in a sender's queue, ordered by when it is due (monotonic clock)."""

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


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


class Webhook:
    """Keep triggered decisions' deliveries in the outbox and send them from one background thread per worker.

    `lease_s` (default: the send timeout plus 30 s) is how long a worker holds a delivery beyond its due time
    before another may take it over; `sweep_s` how often the worker looks for such deliveries.
    """

    def __init__(self, url: str, secret: str, db_url: str, attempts: int, backoff_s: float, timeout_s: float,
                 lease_s: float | None = None, sweep_s: float = SWEEP_S) -> None:
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.lease_s = lease_s if lease_s is not None else timeout_s + 30.0
        self.sweep_s = sweep_s
        self.owner = uuid.uuid4().hex
        self.engine = make_engine(db_url)
        create_tables(self.engine, METADATA)
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._due: list[Delivery] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    def prepare(self, decisions: Sequence[Decision]) -> Delivery | None:
        """The delivery for the triggered ones among `decisions`, or None when none triggered."""
        triggered = [d for d in decisions if d.trigger]
        if not triggered:
            return None
        delivery_id = uuid.uuid4().hex
        request_id = triggered[0].request_id
        return Delivery(time.monotonic(), delivery_id, request_id, payload(delivery_id, request_id, triggered))

    def store(self, delivery: Delivery, connection: sa.Connection) -> None:
        """Put `delivery` in the outbox, held by this worker, in the caller's transaction (the decisions')."""
        now = time.time()
        connection.execute(OUTBOX.insert().values(
            delivery_id=delivery.delivery_id, request_id=delivery.request_id, created_at=_now_iso(),
            body=delivery.body, attempts=0, next_at=now, state="pending", owner=self.owner,
            held_until=now + self.lease_s))

    def start(self, delivery: Delivery) -> None:
        """Send a stored delivery from this worker's queue (once its transaction has committed)."""
        with self._wake:
            heapq.heappush(self._due, delivery)
            self._wake.notify()

    def notify(self, decisions: Sequence[Decision]) -> str | None:
        """Store (in a transaction of its own) and start the delivery of the triggered ones among `decisions`;
        its id, or None when none triggered."""
        delivery = self.prepare(decisions)
        if delivery is None:
            return None
        with self.engine.begin() as connection:
            self.store(delivery, connection)
        self.start(delivery)
        return delivery.delivery_id

    def _run(self) -> None:
        next_sweep = time.monotonic()  # at start: deliveries left by a worker that stopped
        while True:
            with self._wake:
                while not self._stopping:
                    now = time.monotonic()
                    if (self._due and self._due[0].due <= now) or now >= next_sweep:
                        break
                    wait = next_sweep - now if not self._due else min(next_sweep, self._due[0].due) - now
                    self._wake.wait(timeout=wait)
                if self._stopping:
                    return
                ready = self._due and self._due[0].due <= time.monotonic()
                delivery = heapq.heappop(self._due) if ready else None
            try:
                if delivery is None:
                    next_sweep = time.monotonic() + self.sweep_s
                    self._sweep()
                else:
                    self._attempt(delivery)
            except Exception as error:  # noqa: BLE001 - the sender must outlive any failure
                log.error("webhook: %s failed unexpectedly (%s)", "sweep" if delivery is None else "delivery attempt",
                          type(error).__name__)

    def _sweep(self) -> None:
        """Take over the pending deliveries no worker holds any more, each claimed in one UPDATE."""
        now = time.time()
        with self.engine.connect() as connection:
            orphans = connection.execute(
                sa.select(OUTBOX.c.delivery_id, OUTBOX.c.request_id, OUTBOX.c.body, OUTBOX.c.attempts,
                          OUTBOX.c.next_at)
                .where(OUTBOX.c.state == "pending", OUTBOX.c.held_until < now)).all()
        for row in orphans:
            with self.engine.begin() as connection:
                claimed = connection.execute(
                    OUTBOX.update()
                    .where(OUTBOX.c.delivery_id == row.delivery_id, OUTBOX.c.state == "pending",
                           OUTBOX.c.held_until < now)
                    .values(owner=self.owner, held_until=max(now, row.next_at) + self.lease_s)).rowcount
            if claimed == 1:
                log.info("webhook: took over delivery %s (attempt %d next)", row.delivery_id, row.attempts + 1)
                self.start(Delivery(time.monotonic() + max(0.0, row.next_at - now), row.delivery_id,
                                    row.request_id, row.body, row.attempts + 1))

    def _attempt(self, delivery: Delivery) -> None:
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
        wait = self.backoff_s * 2 ** (delivery.attempt - 1)
        self._record(delivery, status, error, outcome, time.time() + wait)
        if outcome == "gave_up":
            log.warning("webhook: delivery %s gave up after %d attempts", delivery.delivery_id, delivery.attempt)
        if outcome == "retrying":
            self.start(Delivery(time.monotonic() + wait, delivery.delivery_id, delivery.request_id, delivery.body,
                                delivery.attempt + 1))

    def _record(self, delivery: Delivery, status: int | None, error: str | None, outcome: str,
                next_at: float) -> None:
        """The attempt's row, and the outbox row's new state, in one transaction."""
        done = outcome != "retrying"
        with self.engine.begin() as connection:
            connection.execute(ATTEMPTS.insert().values(
                delivery_id=delivery.delivery_id, request_id=delivery.request_id, attempt=delivery.attempt,
                attempted_at=_now_iso(), status_code=status, error=error, outcome=outcome))
            connection.execute(OUTBOX.update().where(OUTBOX.c.delivery_id == delivery.delivery_id).values(
                attempts=delivery.attempt, state="pending" if not done else outcome,
                next_at=next_at, held_until=next_at + self.lease_s, **({"body": None} if done else {})))

    def close(self) -> None:
        """Stop sending; the deliveries this worker still holds are released to the next worker at once."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=5)
        self._client.close()
        try:
            with self.engine.begin() as connection:
                connection.execute(OUTBOX.update().where(OUTBOX.c.owner == self.owner, OUTBOX.c.state == "pending")
                                   .values(held_until=0.0))
        except sa.exc.DBAPIError as failure:  # they are taken over once their lease runs out instead
            log.warning("webhook: could not release pending deliveries (%s)", type(failure).__name__)
        self.engine.dispose()


def _read(url: str, table: sa.Table, columns: list[sa.Column], order: sa.Column) -> list[dict[str, object]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(table.name):
                return []
            return [dict(r) for r in connection.execute(sa.select(*columns).order_by(order)).mappings()]
    finally:
        engine.dispose()


def read_outbox(url: str) -> list[dict[str, object]]:
    """Every delivery in the outbox, without bodies, oldest first."""
    return _read(url, OUTBOX, [c for c in OUTBOX.c if c.name != "body"], OUTBOX.c.created_at)


def read_attempts(url: str) -> list[dict[str, object]]:
    """Every recorded delivery attempt, oldest first."""
    return _read(url, ATTEMPTS, list(ATTEMPTS.c), ATTEMPTS.c.id)
