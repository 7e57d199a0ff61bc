"""What happened after support was flagged: typed outcome records and their idempotent store.

An outcome says what a coach's outreach led to (attempted, reached, declined, no_answer) or that
the patient came back on their own terms (re_engaged). The caller sends its own `outcome_id`, so a
retry is harmless: the same id with the same body is a no-op, the same id with a different body is
refused as a conflict. A batch is stored in one transaction: a bad row or a conflict stores nothing.

Outcomes live in table `outcomes` of any SQLAlchemy database, meant to be the decision log's own
(serving's `decision_log_url`, `.lapse/decisions.db` by default), next to the decisions they refer
to; callers pass that URL, so its default stays in one place. Only ids, the kind, the
time and the coach are stored: no patient values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from outreach.errors import OutcomeConflict, OutreachError

METADATA = sa.MetaData()
OUTCOMES = sa.Table(
    "outcomes",
    METADATA,
    sa.Column("outcome_id", sa.String(128), primary_key=True),
    sa.Column("decision_id", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("coach", sa.String(128), nullable=True),
    sa.Column("recorded_at", sa.String(40), nullable=False),
)
BODY_FIELDS = ("decision_id", "kind", "at", "coach")


class OutcomeKind(StrEnum):
    """What happened after a decision."""

    ATTEMPTED = "attempted"
    REACHED = "reached"
    DECLINED = "declined"
    NO_ANSWER = "no_answer"
    RE_ENGAGED = "re_engaged"


class Outcome(BaseModel):
    """One outcome of one decision; `outcome_id` is chosen by the caller and makes retries idempotent."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    outcome_id: str = Field(min_length=1, max_length=128)
    decision_id: str = Field(min_length=1, max_length=128)
    kind: OutcomeKind
    at: AwareDatetime
    coach: str | None = Field(default=None, max_length=128)

    def body(self) -> tuple[str, str, str, str | None]:
        """The stored body (everything but the id), in BODY_FIELDS order, time as UTC ISO text."""
        return (self.decision_id, self.kind.value, self.at.astimezone(timezone.utc).isoformat(), self.coach or None)


@dataclass(frozen=True)
class ImportSummary:
    """What one import did: rows read, outcomes newly stored, and retries that were already there."""

    source: str
    rows: int
    stored: int
    already_stored: int


def parse_outcome(raw: dict, where: str) -> Outcome:
    """An Outcome from one raw record; a bad field raises OutreachError naming `where` and the field."""
    try:
        return Outcome.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "outcome"
        # The message names the field and the rule, never the value sent.
        raise OutreachError(f"{where}: field '{field}': {first['msg']}", field=field) from None


def make_engine(db_url: str) -> sa.Engine:
    """An engine for the outcome store; a SQLite file's folder is created and writers wait for each other."""
    if db_url.startswith("sqlite"):
        database = sa.engine.make_url(db_url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        return sa.create_engine(db_url, connect_args={"timeout": 30})
    return sa.create_engine(db_url, pool_pre_ping=True)


def create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """Create `metadata`'s tables and indexes that do not exist yet, safely beside other processes doing the same.

    SQLAlchemy's `create_all` looks first and creates after, so two processes opening one new database (the service
    and its page process, say) can both find a table missing and one of them then fails on "already exists".
    CREATE ... IF NOT EXISTS in one transaction leaves that check to the database.
    """
    with engine.begin() as connection:
        for table in metadata.sorted_tables:
            connection.execute(sa.schema.CreateTable(table, if_not_exists=True))
            for index in table.indexes:
                connection.execute(sa.schema.CreateIndex(index, if_not_exists=True))


@dataclass(frozen=True)
class Recorded:
    """What became of one outcome sent: when it was first recorded, and whether this call stored it."""

    recorded_at: str
    new: bool


def _unique(outcomes: Iterable[Outcome]) -> tuple[list[Outcome], list[int]]:
    """The batch with exact repeats dropped, and each distinct outcome's first position (1-based);
    one id sent twice with different bodies is a conflict."""
    seen: dict[str, Outcome] = {}
    first: dict[str, int] = {}
    for position, outcome in enumerate(outcomes):
        before = seen.get(outcome.outcome_id)
        if before is not None and before.body() != outcome.body():
            raise OutcomeConflict(f"outcome {position + 1}: outcome_id repeats outcome {first[outcome.outcome_id]} "
                                  "of the batch with a different body", field="outcome_id",
                                  position=position + 1)
        if before is None:
            seen[outcome.outcome_id] = outcome
            first[outcome.outcome_id] = position + 1
    return list(seen.values()), list(first.values())


def _differing(stored: tuple, outcome: Outcome) -> list[str]:
    return [name for name, old, new in zip(BODY_FIELDS, stored, outcome.body()) if old != new]


def record_outcomes(outcomes: Iterable[Outcome], db_url: str) -> tuple[int, int]:
    """Store outcomes in one transaction; return (newly stored, already stored with the same body).

    Raises OutcomeConflict (and stores nothing) if an id is already stored with a different body.
    """
    recorded = record_outcomes_detailed(outcomes, db_url)
    stored = sum(r.new for r in recorded.values())
    return stored, len(recorded) - stored


def record_outcomes_detailed(outcomes: Iterable[Outcome], db_url: str) -> dict[str, Recorded]:
    """`record_outcomes`, saying for each distinct outcome id when it was first recorded and whether now."""
    batch, positions = _unique(outcomes)
    engine = make_engine(db_url)
    try:
        create_tables(engine, METADATA)
        try:
            return _store(engine, batch, positions)
        except sa.exc.IntegrityError:
            # A concurrent import stored one of these ids between our read and our insert: decide again.
            return _store(engine, batch, positions)
    finally:
        engine.dispose()


def _store(engine: sa.Engine, batch: list[Outcome], positions: list[int]) -> dict[str, Recorded]:
    with engine.begin() as connection:
        ids = [o.outcome_id for o in batch]
        stored: dict[str, tuple] = {}
        for start in range(0, len(ids), 500):
            rows = connection.execute(
                sa.select(OUTCOMES.c.outcome_id, *(OUTCOMES.c[f] for f in BODY_FIELDS), OUTCOMES.c.recorded_at)
                .where(OUTCOMES.c.outcome_id.in_(ids[start:start + 500]))
            )
            stored.update({row[0]: tuple(row[1:]) for row in rows})
        fresh = []
        now = datetime.now(timezone.utc).isoformat()
        result: dict[str, Recorded] = {}
        for position, outcome in zip(positions, batch):
            if outcome.outcome_id in stored:
                differs = _differing(stored[outcome.outcome_id][:-1], outcome)
                if differs:
                    raise OutcomeConflict(
                        f"outcome {position}: outcome_id is already stored with a different "
                        f"{', '.join(differs)}; nothing from this batch was stored", field="outcome_id",
                        position=position)
                result[outcome.outcome_id] = Recorded(stored[outcome.outcome_id][-1], new=False)
                continue
            fresh.append(outcome)
            result[outcome.outcome_id] = Recorded(now, new=True)
        if fresh:
            connection.execute(OUTCOMES.insert(), [
                dict(zip(("outcome_id", *BODY_FIELDS, "recorded_at"), (o.outcome_id, *o.body(), now)))
                for o in fresh
            ])
    return result


def read_outcome_file(path: str | Path) -> list[Outcome]:
    """Outcomes from a CSV or Parquet file; a bad row raises OutreachError naming the file, row and field."""
    path = Path(path)
    if not path.exists():
        raise OutreachError(f"{path}: no such file", field="path")
    if path.suffix == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    elif path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        raise OutreachError(f"{path}: outcomes must be a .csv or .parquet file", field="path")
    required = [name for name in ("outcome_id", "decision_id", "kind", "at") if name not in frame.columns]
    if required:
        raise OutreachError(f"{path}: missing column(s) {', '.join(required)}", field=required[0])
    unknown = sorted(set(frame.columns) - {"outcome_id", *BODY_FIELDS})
    if unknown:
        raise OutreachError(f"{path}: unknown column(s) {', '.join(unknown)}", field=unknown[0])
    outcomes = []
    for row, record in enumerate(frame.to_dict(orient="records")):
        clean = {k: (None if v is None or (isinstance(v, float) and pd.isna(v)) else v) for k, v in record.items()}
        if isinstance(clean.get("at"), str):
            clean["at"] = _parse_time(clean["at"], f"{path}: row {row + 1}")
        elif isinstance(clean.get("at"), pd.Timestamp):
            clean["at"] = clean["at"].to_pydatetime()
        outcomes.append(parse_outcome(clean, f"{path}: row {row + 1}"))
    return outcomes


def _parse_time(text: str, where: str) -> datetime:
    try:
        return pd.Timestamp(text).to_pydatetime()
    except ValueError:
        raise OutreachError(f"{where}: field 'at': not an ISO 8601 time", field="at") from None


def import_outcomes(path: str | Path, db_url: str) -> ImportSummary:
    """Import a CSV/Parquet file of outcomes in one transaction (all rows or none); re-running it is a no-op."""
    outcomes = read_outcome_file(path)
    stored, already = record_outcomes(outcomes, db_url)
    return ImportSummary(source=str(path), rows=len(outcomes), stored=stored, already_stored=already)


def read_outcomes(db_url: str) -> pd.DataFrame:
    """Every stored outcome as a table (empty with the columns when there are none)."""
    engine = make_engine(db_url)
    try:
        create_tables(engine, METADATA)
        with engine.connect() as connection:
            rows = connection.execute(sa.select(OUTCOMES).order_by(OUTCOMES.c.at, OUTCOMES.c.outcome_id)).all()
        return pd.DataFrame(rows, columns=[c.name for c in OUTCOMES.columns])
    finally:
        engine.dispose()
