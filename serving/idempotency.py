"""Idempotency-Key: a retried POST /score, /explain or /triage returns the first answer, not a second decision.

The caller sends `Idempotency-Key: <its own key>` (1-200 printable characters). Keys are kept per
client (the key is hashed with the caller's API key, so two platforms cannot see each other's
answers) and per endpoint, in table `idempotency_keys` of the decision-log database:

- first use: the key is claimed ("pending") and the request is answered. The 200 answer is stored with
  the key in the same transaction as the request's decisions (so a decision is never committed without
  the answer its key replays); any other answer releases the key (the caller may retry).
- a request that gives up (504) after its decisions were handed to the decision log keeps its key: if
  they are committed, a retry gets that answer; if not, or if it gave up earlier, the key is released. A
  claim left pending longer than `pending_stale_s` (a commit that failed after its request gave up) is
  taken over by the next request with the key.
- same key, same body (SHA-256 of the bytes): the stored answer, with `Idempotent-Replayed: true`.
- same key, different body: 422. Same key while the first request is still being answered: 409.

Stored answers hold what the reply held (risks and reason values), so they are deleted after
`idempotency_ttl_hours`; only the key's hash is stored, never the key or the body.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio.to_thread
import sqlalchemy as sa

from outreach.outcomes import create_tables

from .auth import bearer_token
from .decision_log import make_engine
from .guard import Message, Receive, Scope, Send, error_body, replaying

METADATA = sa.MetaData()
KEYS = sa.Table(
    "idempotency_keys",
    METADATA,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False, index=True),
    sa.Column("status", sa.Integer, nullable=True),  # NULL while the first request is being answered
    sa.Column("response", sa.LargeBinary, nullable=True),
)
HEADER = b"idempotency-key"
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


@dataclass(frozen=True)
class Stored:
    """What the store knows of a key: nothing yet (claimed now), a stored answer, a mismatch or in progress."""

    outcome: str  # "claimed" | "replay" | "mismatch" | "pending"
    status: int = 0
    response: bytes = b""


class RequestAbandoned(Exception):
    """The request gave up (its key was released) before its decisions were handed over: record nothing."""


class Claim:
    """The key a request holds while it is answered, and who settles it: the request, or the decision log.

    The endpoint hands the claim to the decision log with its answer (`hand`), so the answer is stored by
    the transaction that commits the decisions; a request that ends without an answer abandons the claim
    (`abandon`) unless it was handed and its commit can no longer be called off. Both run under a lock, so
    exactly one of them wins.
    """

    def __init__(self, key_hash: str) -> None:
        self.key_hash = key_hash
        self._lock = threading.Lock()
        self._state = "open"  # "open" | "handed" | "abandoned"
        self._commit: Future | None = None

    @property
    def handed(self) -> bool:
        return self._state == "handed"

    def hand(self, body: bytes, submit: Callable[[Callable[[sa.Connection], None]], Future]) -> Future | None:
        """Submit the decisions through `submit(within)`, storing `body` as the key's answer in their
        transaction; None if the request has already given up (then nothing is submitted)."""
        def store_answer(connection: sa.Connection) -> None:
            connection.execute(KEYS.update().where(KEYS.c.key_hash == self.key_hash).values(status=200,
                                                                                             response=body))

        with self._lock:
            if self._state == "abandoned":
                return None
            self._state = "handed"
            self._commit = submit(store_answer)
            return self._commit

    def abandon(self) -> bool:
        """The request ends without an answer: whether the key is to be released (nothing was committed)."""
        with self._lock:
            if self._state == "open":
                self._state = "abandoned"
                return True
            # Handed: release only if the commit had not begun (then its rows are skipped).
            return self._state == "handed" and self._commit is not None and self._commit.cancel()


_CLAIM: ContextVar[Claim | None] = ContextVar("lapse_idempotency_claim", default=None)


def current_claim() -> Claim | None:
    """The Idempotency-Key claim of the request being answered (None without a key)."""
    return _CLAIM.get()


class IdempotencyStore:
    """Keys and their answers in the decision-log database (its own table)."""

    def __init__(self, url: str, ttl: timedelta, pending_stale: timedelta = timedelta(minutes=5)) -> None:
        self.url = url
        self.ttl = ttl
        self.pending_stale = pending_stale
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            engine = make_engine(self.url)
            create_tables(engine, METADATA)
            self._engine = engine
        return self._engine

    def claim(self, key_hash: str, body_hash: str) -> Stored:
        """Claim the key for this body, or say why not."""
        now = datetime.now(timezone.utc)
        try:
            with self.engine.begin() as connection:
                connection.execute(KEYS.delete().where(KEYS.c.created_at < (now - self.ttl).isoformat()))
                # A claim pending this long was left by a request whose commit failed after it gave up.
                connection.execute(KEYS.delete().where((KEYS.c.key_hash == key_hash) & KEYS.c.status.is_(None) & (
                    KEYS.c.created_at < (now - self.pending_stale).isoformat())))
                connection.execute(KEYS.insert().values(key_hash=key_hash, body_hash=body_hash,
                                                        created_at=now.isoformat()))
                return Stored("claimed")
        except sa.exc.IntegrityError:  # the key is taken: by an earlier answer or one being answered now
            pass
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(KEYS).where(KEYS.c.key_hash == key_hash)).mappings().first()
        if row is None:  # released (or expired) meanwhile: the caller may simply retry
            return Stored("pending")
        if row["body_hash"] != body_hash:
            return Stored("mismatch")
        if row["status"] is None:
            return Stored("pending")
        return Stored("replay", row["status"], row["response"])

    def keep(self, key_hash: str, status: int, response: bytes) -> None:
        with self.engine.begin() as connection:
            connection.execute(KEYS.update().where(KEYS.c.key_hash == key_hash).values(status=status,
                                                                                        response=response))

    def release(self, key_hash: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(KEYS.delete().where(KEYS.c.key_hash == key_hash))


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


async def _send_json(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra]})
    await send({"type": "http.response.body", "body": body})


class Idempotency:
    """ASGI middleware (inside the guard: the caller is authenticated and the body valid when it runs)."""

    def __init__(self, app: Callable[..., Any], *, url: str, paths: frozenset[str], ttl_hours: float,
                 pending_stale_s: float = 300.0) -> None:
        self.app = app
        self.paths = paths
        self.store = IdempotencyStore(url, timedelta(hours=ttl_hours), timedelta(seconds=pending_stale_s))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if HEADER not in headers:
            await self.app(scope, receive, send)
            return
        key = headers[HEADER].decode("latin-1")
        if not _KEY.fullmatch(key):
            problem = {"field": "Idempotency-Key", "rule": "1 to 200 printable characters without spaces",
                       "type": "idempotency_key"}
            await _send_json(send, 422, error_body("the request breaks the rules below", [problem]))
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1")) or ""
        key_hash = _digest(token.encode(), scope["path"].encode(), key.encode())
        stored = await anyio.to_thread.run_sync(self.store.claim, key_hash, _digest(body))
        if stored.outcome == "replay":
            await _send_json(send, stored.status, stored.response, [(b"idempotent-replayed", b"true")])
            return
        if stored.outcome == "mismatch":
            problem = {"field": "Idempotency-Key", "rule": "this key was used with a different body",
                       "type": "idempotency_mismatch"}
            await _send_json(send, 422, error_body("the request breaks the rules below", [problem]))
            return
        if stored.outcome == "pending":
            await _send_json(send, 409, error_body("a request with this Idempotency-Key is still being answered; "
                                                   "retry shortly"), [(b"retry-after", b"1")])
            return
        await self._answer_once(scope, body, receive, send, key_hash)

    async def _answer_once(self, scope: Scope, body: bytes, receive: Receive, send: Send, key_hash: str) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        claim = Claim(key_hash)
        token = _CLAIM.set(claim)
        try:
            await self.app(scope, replaying(body, receive), capture)
        except BaseException:  # the request gave up (504) or broke: settle the key without waiting
            if claim.abandon():
                await anyio.to_thread.run_sync(self.store.release, key_hash)
            raise
        finally:
            _CLAIM.reset(token)
        answer = b"".join(chunks)
        status = start["status"] if start is not None else 500
        if status == 200:
            if not claim.handed:  # an answer without decisions (none today): stored here
                await anyio.to_thread.run_sync(self.store.keep, key_hash, status, answer)
        else:
            await anyio.to_thread.run_sync(self.store.release, key_hash)
        if start is not None:
            await send(start)
        await send({"type": "http.response.body", "body": answer})
