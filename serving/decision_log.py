"""The durable record of every decision the service answers: committed before the reply leaves.

One row per patient decision: who, when, which model version, the risk, tier, the reasons
(feature names and contributions only, never the patient's values) and the support trigger.
Raw events and request bodies are never stored. Rows are written by one writer thread that
commits whatever is waiting in one transaction (group commit), so concurrent requests share
a disk flush; each caller waits for its own rows to be committed before it answers.
On SQLite a transaction's rows go in by one statement (a multi-row INSERT ... SELECT FROM VALUES, padded
to a power of two so its prepared form is reused): SQLite inserts them all without Python's GIL, so a
caller can serialise its answer meanwhile (`submit(..., hand_over=True)`), and a writer sharing the GIL
with busy threads waits for it a few times per commit instead of once per row.
SQLite is the default (WAL journal, synchronous=FULL unless configured "normal"); any SQLAlchemy URL works, e.g.
postgresql+psycopg://user@host/db (the driver must be installed).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from pydantic_core import to_json

from outreach.outcomes import create_tables

from .logging import redacted_traceback

METADATA = sa.MetaData()
DECISIONS = sa.Table(
    "decisions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("decided_at", sa.String(40), nullable=False),
    sa.Column("request_id", sa.String(40), nullable=False),
    sa.Column("endpoint", sa.String(20), nullable=False),
    sa.Column("patient_id", sa.String(128), nullable=False, index=True),
    sa.Column("as_of", sa.String(40), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(40), nullable=False),
    sa.Column("risk", sa.Float, nullable=False),
    sa.Column("tier", sa.String(40), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),
    sa.Column("trigger", sa.Boolean, nullable=False),
    sa.Column("priority", sa.String(20), nullable=False),
    # The program from the patient's profile (not a health value); NULL when scored from features only.
    sa.Column("program", sa.String(200), nullable=True),
    # The trigger policy behind `trigger` (outreach/policy.py): its name and version, the realized
    # probability of support (0/1 unless randomized), the HMAC draw (randomized only) and the action taken.
    # NULL in rows logged before policies were recorded.
    sa.Column("policy", sa.String(20), nullable=True),
    sa.Column("policy_version", sa.String(80), nullable=True),
    sa.Column("propensity", sa.Float, nullable=True),
    sa.Column("draw", sa.Float, nullable=True),
    sa.Column("action", sa.Boolean, nullable=True),
    # "scored", or "not_eligible" for a patient outside what the model was trained on (models/status.py): its
    # risk is no prediction to act on or to judge the model by. NULL in rows logged before statuses were recorded.
    sa.Column("status", sa.String(20), nullable=True),
)
ROW_COLUMNS = ("decided_at", "request_id", "endpoint", "patient_id", "as_of", "model_name", "model_version",
               "risk", "tier", "reasons", "trigger", "priority", "program",
               "policy", "policy_version", "propensity", "draw", "action", "status")
_ZERO = timedelta(0)
SYNC_MODES = {"full": "FULL", "normal": "NORMAL"}
# Rows committed in one transaction at most; more wait for the next one.
_MAX_GROUP_ROWS = 20_000
# SQLite: rows committed between two checkpoints of the journal into the database file (about SQLite's own
# 1,000-page step). Its automatic checkpoint ran inside the commit that crossed the step, so that request waited.
_CHECKPOINT_ROWS = 5_000
# SQLite: rows in one INSERT at most (their values are bound parameters, within SQLite's limit of variables).
_MAX_STATEMENT_ROWS = 1024
# How long a caller handing its rows over waits for the writer to start inserting them, at most.
_HAND_OVER_WAIT_S = 1.0
log = logging.getLogger("lapse.serving.decision_log")


@dataclass(slots=True)
class Decision:
    """One answered decision about one patient."""

    request_id: str
    endpoint: str
    patient_id: str
    as_of: datetime
    model_name: str
    model_version: str
    risk: float
    tier: str
    reasons: tuple[tuple[str, float], ...]  # (feature name, contribution), stored as [[name, contribution], ...]
    trigger: bool
    priority: str
    program: str | None = None
    policy: str | None = None
    policy_version: str | None = None
    propensity: float | None = None
    draw: float | None = None
    status: str = "scored"

    def values(self, times: dict[datetime, str] | None = None) -> tuple[object, ...]:
        """The decision as a table row without its commit time: ROW_COLUMNS[1:], in that order.

        `times` caches as_of times already written as UTC ISO 8601 (a batch mostly shares one as_of).
        """
        written = times.get(self.as_of) if times is not None else None
        if written is None:
            as_of = self.as_of if self.as_of.utcoffset() == _ZERO else self.as_of.astimezone(timezone.utc)
            written = as_of.isoformat()
            if times is not None:
                times[self.as_of] = written
        return (self.request_id, self.endpoint, self.patient_id, written, self.model_name,
                self.model_version, float(self.risk), self.tier,
                to_json(self.reasons).decode(), bool(self.trigger),
                self.priority, self.program, self.policy, self.policy_version, self.propensity, self.draw,
                bool(self.trigger) if self.policy is not None else None, self.status)


def rows(decisions: list[Decision]) -> list[tuple[object, ...]]:
    """Every decision's `values()`, writing each distinct as_of time once."""
    times: dict[datetime, str] = {}
    return [d.values(times) for d in decisions]


@dataclass(slots=True)
class _Waiting:
    """Rows waiting for the writer (without their commit time), their caller's future, and what else is to
    be written in their transaction."""

    rows: list[tuple[object, ...]]
    future: Future
    within: Callable[[sa.Connection], None] | None = None
    # Set once the writer starts inserting these rows or gives them up (see DecisionLog.submit's hand_over).
    taken: threading.Event | None = None


class DecisionLogError(RuntimeError):
    """The decision log could not record a decision (the reply must not be sent)."""


def _use_wal(cursor, busy_ms: int) -> None:  # noqa: ANN001 - a DB-API cursor
    """Put the database in WAL mode (kept in the file: a no-op once done). Switching a new file's mode does not wait
    on SQLite's busy handler, so processes opening one new file together retry it until the busy timeout."""
    deadline = time.monotonic() + busy_ms / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def make_engine(url: str, sync: str = "full", busy_ms: int = 30_000, autocheckpoint: bool = True) -> sa.Engine:
    """An engine for the decision log; SQLite gets a WAL journal and, with sync "full", a flush on every commit.

    `autocheckpoint=False`: SQLite does not copy the journal into the database inside a commit of this engine's
    (the decision log's writer checkpoints after its replies are released instead)."""
    if sync not in SYNC_MODES:
        raise ValueError(f"decision log sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_ms / 1000})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            _use_wal(cursor, busy_ms)
            cursor.execute(f"PRAGMA synchronous={SYNC_MODES[sync]}")
            if not autocheckpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def add_missing_columns(engine: sa.Engine) -> None:
    """Add columns newer than an existing decisions table (nullable ones only), so older logs keep working."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(DECISIONS.name)}
    for column in DECISIONS.columns:
        if column.name not in present and column.nullable:
            kind = column.type.compile(dialect=engine.dialect)
            try:
                with engine.begin() as connection:
                    connection.execute(sa.text(f"ALTER TABLE {DECISIONS.name} ADD COLUMN {column.name} {kind}"))
            except sa.exc.DBAPIError:
                # Another worker may have added it first.
                if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(DECISIONS.name)}:
                    raise


@lru_cache(maxsize=32)
def _padded_insert(size: int) -> str:
    """An INSERT of `size` rows of ROW_COLUMNS (qmark parameters); rows whose first value is NULL are left out,
    so fewer rows go in one statement of a size already prepared, with NULLs after them."""
    row = "(" + ", ".join("?" * len(ROW_COLUMNS)) + ")"
    return (f"INSERT INTO {DECISIONS.name} ({', '.join(ROW_COLUMNS)}) SELECT * FROM (VALUES "
            f"{', '.join([row] * size)}) WHERE column1 IS NOT NULL")


def _statement_sizes(rows: int, largest: int) -> list[tuple[int, int]]:
    """(rows, statement size) for each INSERT of `rows` rows: `largest` at a time, the rest in the smallest
    power of two that holds them."""
    out = [(largest, largest)] * (rows // largest)
    if rows % largest:
        rest = rows % largest
        out.append((rest, 1 << (rest - 1).bit_length()))
    return out


def _settle(future: Future, result: int | None = None, error: BaseException | None = None) -> None:
    """Complete a waiter's future unless it is already done (its request may have given up)."""
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass


class DecisionLog:
    """Append decisions durably; `write` returns only once they are committed.

    The writer thread never stops while the log is open: a failed commit is reported to its waiters
    (they answer 503) and marks the log unhealthy with the reason (`problem`, shown by /readyz); while
    unhealthy, new decisions are refused at once and the store is tried again every `retry_s` seconds,
    so the service recovers by itself once the store is writable again (also when it was not at start).
    A waiter whose request was cancelled before its commit began is skipped; a commit already under way
    finishes (committed or rolled back) whatever happened to its request.
    """

    def __init__(self, url: str, sync: str = "full", busy_ms: int = 30_000, retry_s: float = 2.0) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"decision log sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self.url = url
        self.sync = sync
        self.busy_ms = busy_ms
        self.retry_s = retry_s
        self.engine: sa.Engine | None = None
        self.problem: str | None = "the decision log is being opened"
        self._positional = True
        self._insert_sql = ""
        self._statement_rows = 0  # SQLite: rows per INSERT at most, set with the writer's connection (0: other stores)
        self._idle = False  # the writer is waiting for rows
        self._closing = False
        self._rows_since_checkpoint = 0  # SQLite only
        self._connection: sa.Connection | None = None  # the writer thread's, between commits
        # Waiting rows (without their commit time) and the future of their caller.
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._opened = threading.Event()
        self._writer = threading.Thread(target=self._run, name="decision-log-writer", daemon=True)
        self._writer.start()
        # Open in the writer, but give a healthy store the chance to be ready before the first request.
        self._opened.wait(timeout=max(busy_ms / 1000, 1.0) + 5.0)

    @property
    def healthy(self) -> bool:
        """Whether the last attempt to reach the store succeeded."""
        return self.problem is None

    def _open(self) -> None:
        if self.engine is None:
            engine = make_engine(self.url, self.sync, self.busy_ms, autocheckpoint=False)
            try:
                create_tables(engine, METADATA)
                add_missing_columns(engine)
            except Exception:
                engine.dispose()
                raise
            insert = DECISIONS.insert().compile(dialect=engine.dialect, column_keys=list(ROW_COLUMNS))
            # Drivers with positional parameters take the rows as tuples directly (SQLite: the fast path).
            self._positional = engine.dialect.paramstyle in ("qmark", "numeric", "format")
            self._insert_sql = str(insert)
            self.engine = engine

    def _probe(self) -> None:
        """Open the store if needed and check that a write could start now (raises if not)."""
        self._open()
        if self.engine.dialect.name == "sqlite":
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("BEGIN IMMEDIATE")
                raw.rollback()
            finally:
                raw.close()
        else:
            with self.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

    def _recover(self) -> None:
        try:
            self._probe()
        except Exception as error:  # noqa: BLE001 - the reason is shown by /readyz, the store retried
            self.problem = f"the decision log cannot be written ({type(error).__name__}); retrying"
        else:
            if self.problem is not None:
                log.warning("decision log: writable again")
            self.problem = None
        self._opened.set()

    def submit(self, decisions: list[Decision], within: Callable[[sa.Connection], None] | None = None,
               hand_over: bool = False) -> Future:
        """Queue decisions for the writer; the future completes once they are committed.

        The rows are made here, in the caller's thread. `within` runs in the same transaction (e.g. storing
        the answer an Idempotency-Key replays). `hand_over`: the caller is about to run long work that holds
        the GIL (serialising a big answer), so when the writer is idle this returns once it has started
        inserting the rows, which SQLite then does without the GIL, beside that work. Without it the writer
        could not get the GIL until that work ended.
        """
        future: Future = Future()
        if not decisions and within is None:
            future.set_result(0)
            return future
        if self.problem is not None or self._closing:
            future.set_exception(DecisionLogError(self.problem or "the decision log is closing"))
            return future
        # A busy writer is not waited for: it takes these rows after its commit, while the caller works.
        waiting = _Waiting(rows(decisions), future, within, threading.Event() if hand_over and self._idle else None)
        self._queue.put(waiting)
        if waiting.taken is not None:
            waiting.taken.wait(_HAND_OVER_WAIT_S)
        return future

    def write(self, decisions: list[Decision]) -> int:
        """Commit decisions and return how many rows were written."""
        return self.submit(decisions).result()

    async def write_async(self, decisions: list[Decision]) -> int:
        """Commit decisions without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(decisions))

    def _run(self) -> None:
        while True:
            try:
                if self.problem is not None:
                    self._recover()
                self._idle = True
                try:
                    item = self._queue.get(timeout=None if self.problem is None else self.retry_s)
                except queue.Empty:
                    continue
                finally:
                    self._idle = False
                if item is None:
                    self._let_go(broken=False)
                    return
                group = [item]
                rows = len(item.rows)
                stop = False
                while rows < _MAX_GROUP_ROWS:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    group.append(more)
                    rows += len(more.rows)
                self._commit(group)
                if stop:
                    self._let_go(broken=False)
                    return
            except Exception as error:  # noqa: BLE001 - the writer must outlive any failure
                self.problem = f"the decision log writer failed ({type(error).__name__}); retrying"
                log.error("decision log writer: %s", redacted_traceback(error))

    def _commit(self, group: list[_Waiting]) -> None:
        # A waiter cancelled before its commit begins has already answered (504): its rows are not written.
        # Once running, a future can no longer be cancelled, so its outcome is always delivered.
        live = [waiting for waiting in group if waiting.future.set_running_or_notify_cancel()]
        try:
            self._commit_live(live)
        finally:
            _hand_over(group)  # also those whose rows were not inserted

    def _commit_live(self, live: list[_Waiting]) -> None:
        if not live:
            return
        if self.problem is not None or self.engine is None:
            failure = DecisionLogError(self.problem or "the decision log is not open")
            for waiting in live:
                _settle(waiting.future, error=failure)
            return
        decided_at = datetime.now(timezone.utc).isoformat()
        count = sum(len(waiting.rows) for waiting in live)
        try:
            connection = self._held()
            with connection.begin():
                if self._statement_rows:
                    # Begun here, not by the driver inside the INSERT: there it would let go of the GIL (and
                    # wait to get it back) after the rows are handed over. IMMEDIATE: the write lock now.
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    self._insert_padded(connection, decided_at, live)
                elif count:
                    rows = [(decided_at, *values) for waiting in live for values in waiting.rows]
                    _hand_over(live)
                    if self._positional:
                        connection.exec_driver_sql(self._insert_sql, rows)
                    else:
                        connection.execute(DECISIONS.insert(), [dict(zip(ROW_COLUMNS, r)) for r in rows])
                for waiting in live:
                    if waiting.within is not None:
                        waiting.within(connection)
        except Exception as error:  # noqa: BLE001 - every waiting caller must learn of the failure
            self._let_go()
            self.problem = f"the decision log commit failed ({type(error).__name__}); retrying"
            log.error("decision log: commit of %d decision(s) failed (%s); answering 503 until it is writable",
                      count, type(error).__name__)
            failure = DecisionLogError(self.problem)
            for waiting in live:
                _settle(waiting.future, error=failure)
            return
        for waiting in live:
            _settle(waiting.future, result=len(waiting.rows))
        if self.engine.dialect.name == "sqlite":
            self._rows_since_checkpoint += count
            if self._rows_since_checkpoint >= _CHECKPOINT_ROWS:
                self._checkpoint()

    def _insert_padded(self, connection: sa.Connection, decided_at: str, live: list[_Waiting]) -> None:
        """SQLite: the waiters' rows, committed at `decided_at`, by padded multi-row INSERTs (`_padded_insert`); the
        waiters are handed over just before the first."""
        rows = [values for waiting in live for values in waiting.rows]
        width = len(ROW_COLUMNS)
        start = 0
        for taken, size in _statement_sizes(len(rows), self._statement_rows):
            params: list[object] = []
            append, extend = params.append, params.extend
            for values in rows[start:start + taken]:
                append(decided_at)
                extend(values)
            extend([None] * ((size - taken) * width))
            start += taken
            params_tuple = tuple(params)
            _hand_over(live)
            connection.exec_driver_sql(_padded_insert(size), params_tuple)

    def _held(self) -> sa.Connection:
        """The writer's own connection, kept between commits: taking one from the pool for each commit and handing
        it back (which rolls it back) was a sizeable part of a one-row commit's time."""
        if self._connection is None:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                # As many rows per INSERT as SQLite's limit of bound variables allows, up to _MAX_STATEMENT_ROWS.
                variables = connection.connection.driver_connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
                fits = min(max(variables // len(ROW_COLUMNS), 1), _MAX_STATEMENT_ROWS)
                self._statement_rows = 1 << (fits.bit_length() - 1)
                # Prepare each size of INSERT once now (the driver keeps them): a thousand rows' took milliseconds.
                # All-NULL rows: nothing is inserted, and the transaction is rolled back anyway.
                with connection.begin() as transaction:
                    size = 1
                    while size <= self._statement_rows:
                        connection.exec_driver_sql(_padded_insert(size), (None,) * (size * len(ROW_COLUMNS)))
                        size *= 2
                    transaction.rollback()
            self._connection = connection
        return self._connection

    def _let_go(self, broken: bool = True) -> None:
        """Give up the writer's connection: after a failure (the next commit starts on a fresh one), or when closing."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate() if broken else connection.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped whatever it says
                pass

    def _checkpoint(self) -> None:
        """Copy the journal's committed pages into the database file, once the replies waiting on them are free
        to go. PASSIVE: readers are not blocked, and what a reader still holds is copied next time."""
        self._rows_since_checkpoint = 0
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.DBAPIError as error:  # the next commit reports a store that is really broken
            log.warning("decision log: checkpoint skipped (%s)", type(error).__name__)

    def close(self) -> None:
        """Finish queued writes and release the database."""
        self._closing = True
        if self._writer.is_alive():
            self._queue.put(None)
            self._writer.join(timeout=max(self.busy_ms / 1000, 1.0) + 5.0)
        if self.engine is not None:
            self.engine.dispose()


def _hand_over(live: Sequence[_Waiting]) -> None:
    """Let the callers waiting for their rows to be taken go on (see DecisionLog.submit's hand_over)."""
    for waiting in live:
        if waiting.taken is not None:
            waiting.taken.set()


def read_decisions(url: str) -> list[dict[str, object]]:
    """Every logged decision, oldest first (for audits, reports and tests)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(DECISIONS).order_by(DECISIONS.c.id)).mappings().all()
        return [{**row, "reasons": [tuple(r) for r in json.loads(row["reasons"])]} for row in rows]
    finally:
        engine.dispose()
