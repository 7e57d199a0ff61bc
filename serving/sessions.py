"""Clinician page sessions, stored server-side so signing out holds across restarts and workers.

A session is a row in the `ui_sessions` table of the decision log's database: a random id, the
digest of the API key it was opened with, its expiry and whether it was revoked. The cookie holds
the id signed with itsdangerous (the signing secret is made once and kept in the same database,
so every worker accepts it). A session ends when it expires, when it is signed out, or when its
key is removed from the key ring.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from itsdangerous import BadData, URLSafeTimedSerializer

from outreach.outcomes import create_tables

from .auth import KeyRing

METADATA = sa.MetaData()
SESSIONS = sa.Table(
    "ui_sessions", METADATA,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("key_digest", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("revoked", sa.Boolean, nullable=False, default=False),
)
SECRET = sa.Table(
    "ui_session_secret", METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
)
_SALT = "lapse clinician page session v2"
_TOKEN_MAX = 300


class SessionsUnavailable(RuntimeError):
    """The session store cannot be reached (the page answers 503)."""


class Sessions:
    """Issue, check and revoke clinician page sessions."""

    def __init__(self, keys: KeyRing, hours: float) -> None:
        self.keys = keys
        self.seconds = hours * 3600.0
        self._engine_of: Callable[[], sa.Engine | None] = lambda: None
        self._ready: tuple[int, URLSafeTimedSerializer] | None = None
        self._lock = threading.Lock()

    def bind(self, engine: sa.Engine | Callable[[], sa.Engine | None] | None) -> None:
        """Keep sessions in `engine`'s database (an engine, or a function returning the current one)."""
        self._engine_of = engine if callable(engine) and not isinstance(engine, sa.Engine) else (lambda: engine)
        self._ready = None

    def _store(self) -> tuple[sa.Engine, URLSafeTimedSerializer]:
        engine = self._engine_of()
        if engine is None:
            raise SessionsUnavailable("the session store is not available")
        with self._lock:
            if self._ready is None or self._ready[0] != id(engine):
                try:
                    create_tables(engine, METADATA)
                    with engine.begin() as connection:
                        row = connection.execute(sa.select(SECRET.c.secret).where(SECRET.c.id == 1)).first()
                        if row is None:
                            connection.execute(SECRET.insert().values(id=1, secret=secrets.token_urlsafe(48)))
                            row = connection.execute(sa.select(SECRET.c.secret).where(SECRET.c.id == 1)).first()
                except sa.exc.SQLAlchemyError as error:
                    raise SessionsUnavailable(f"the session store failed ({type(error).__name__})") from None
                self._ready = (id(engine), URLSafeTimedSerializer(row.secret, salt=_SALT))
            return engine, self._ready[1]

    def issue(self, key: str) -> str | None:
        """A session cookie value for a valid client key, or None for a key the service does not accept."""
        self.keys.refresh()
        if not self.keys.is_client(key):
            return None
        engine, signer = self._store()
        session_id = secrets.token_urlsafe(32)
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        now = time.time()
        try:
            with engine.begin() as connection:
                connection.execute(SESSIONS.delete().where(SESSIONS.c.expires_at < now))
                connection.execute(SESSIONS.insert().values(id=session_id, key_digest=digest,
                                                            expires_at=now + self.seconds, revoked=False))
        except sa.exc.SQLAlchemyError as error:
            raise SessionsUnavailable(f"the session store failed ({type(error).__name__})") from None
        return signer.dumps(session_id)

    def _session_id(self, token: str | None, signer: URLSafeTimedSerializer, max_age: float | None) -> str | None:
        if not token or len(token) > _TOKEN_MAX:
            return None
        try:
            value = signer.loads(token, max_age=max_age)
        except BadData:
            return None
        return value if isinstance(value, str) else None

    def valid(self, token: str | None) -> bool:
        """Whether `token` names an unexpired, unrevoked session whose key the service still accepts."""
        if not token or len(token) > _TOKEN_MAX:
            return False
        try:
            engine, signer = self._store()
        except SessionsUnavailable:
            return False
        session_id = self._session_id(token, signer, self.seconds)
        if session_id is None:
            return False
        try:
            with engine.connect() as connection:
                row = connection.execute(sa.select(SESSIONS).where(SESSIONS.c.id == session_id)).first()
        except sa.exc.SQLAlchemyError:
            return False
        if row is None or row.revoked or row.expires_at <= time.time():
            return False
        self.keys.refresh()
        return bytes.fromhex(row.key_digest) in self.keys.client

    def revoke(self, token: str | None) -> None:
        """End a session for every worker, now and after restarts."""
        try:
            engine, signer = self._store()
        except SessionsUnavailable:
            return
        session_id = self._session_id(token, signer, None)
        if session_id is None:
            return
        with engine.begin() as connection:
            connection.execute(SESSIONS.update().where(SESSIONS.c.id == session_id).values(revoked=True))
