"""The effect analysis's decisions table, built from the service's decision log and the stored outcomes.

One row per logged decision whose outcome window has closed: unit = patient_id, time = decided_at,
action (the support the policy chose), probability (the recorded propensity; 0/1 when the decision
was not randomized, so the analysis leaves it out), outcome = 1 if a `re_engaged` outcome of that
decision falls within `window_days` after it, tier, and the numeric moderators asked for (columns of
the decision log, e.g. `risk`, or features: the log keeps no feature values, so they come from a
features table joined on patient_id and as_of, e.g. what `lapse features` wrote). Decisions logged
before policies were recorded count as not randomized: their action is the logged trigger and their
propensity that trigger (0 or 1).

The decision log is read as plain SQL (serving owns its schema; this stage sits below serving).
Nothing here is written anywhere: the table stays in memory and only aggregates leave `run_effect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import sqlalchemy as sa

from outreach.errors import OutreachError
from outreach.outcomes import Outcome, OutcomeKind, make_engine, read_outcomes

DECISIONS_TABLE = "decisions"
# What the table builder needs from each logged decision (older logs lack the policy columns).
REQUIRED = ("id", "decided_at", "patient_id", "tier", "trigger")
OPTIONAL = ("action", "propensity", "policy", "policy_version", "risk")


def read_decision_log(db_url: str) -> pd.DataFrame:
    """The logged decisions (one row each, `decision_id` = the log's row id as text); a missing log is an error."""
    engine = make_engine(db_url)
    try:
        if not sa.inspect(engine).has_table(DECISIONS_TABLE):
            raise OutreachError(f"{_where(db_url)}: no decisions table (has the service logged any decision?)",
                                field="decisions_db")
        table = sa.Table(DECISIONS_TABLE, sa.MetaData(), autoload_with=engine)
        missing = [name for name in REQUIRED if name not in table.c]
        if missing:
            raise OutreachError(f"{_where(db_url)}: decisions table lacks column(s) {', '.join(missing)}",
                                field=missing[0])
        with engine.connect() as connection:
            rows = connection.execute(sa.select(table).order_by(table.c.id)).mappings().all()
        frame = pd.DataFrame(rows, columns=list(table.c.keys()))
    finally:
        engine.dispose()
    frame["decision_id"] = frame["id"].astype(str)
    return frame


def _where(db_url: str) -> str:
    """The database named without credentials (a password in a URL must not reach a message)."""
    return sa.engine.make_url(db_url).render_as_string(hide_password=True)


def _utc(values: pd.Series, what: str) -> pd.Series:
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        raise OutreachError(f"{what}: not ISO 8601 times", field=what) from None


def with_features(decisions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The decisions with the feature values of each decision's patient at its as_of (a features table, e.g.
    `lapse features` output, with patient_id and as_of); a decision without a matching row gets NaN."""
    missing = [c for c in ("patient_id", "as_of") if c not in features.columns]
    if missing:
        raise OutreachError(f"features: missing column(s) {', '.join(missing)}", field=missing[0])
    clash = sorted(set(features.columns) & set(decisions.columns) - {"patient_id", "as_of"})
    right = features.drop(columns=clash).assign(
        patient_id=features["patient_id"].astype(str), as_of=_utc(features["as_of"], "features.as_of"))
    right = right.drop_duplicates(["patient_id", "as_of"], keep="last")
    left = decisions.assign(_as_of=_utc(decisions["as_of"], "decisions.as_of"))
    merged = left.merge(right.rename(columns={"as_of": "_as_of"}), on=["patient_id", "_as_of"], how="left")
    return merged.drop(columns="_as_of")


def build_decisions_table(decisions: pd.DataFrame, outcomes: pd.DataFrame, window_days: int = 7,
                          moderators: Sequence[str] = (), until: datetime | None = None) -> pd.DataFrame:
    """The analysis table (columns unit, time, action, probability, outcome, tier and the moderators).

    `decisions` is `read_decision_log`'s table (optionally `with_features`), `outcomes` `read_outcomes`'s.
    Decisions whose window has not ended by `until` (default: now) are left out: their outcome is not known yet.
    """
    if window_days < 1:
        raise OutreachError("window_days must be at least 1", field="window_days")
    unknown = [m for m in moderators if m not in decisions.columns]
    if unknown:
        raise OutreachError(f"moderator(s) {', '.join(unknown)}: not a column of the decision log or the features "
                            "table", field="moderators")
    window = pd.Timedelta(days=window_days)
    until = pd.Timestamp(until or datetime.now(timezone.utc))
    decided = _utc(decisions["decided_at"], "decisions.decided_at")
    closed = (decided + window <= until).to_numpy()
    trigger = decisions["trigger"].astype(bool).to_numpy()
    action = _filled(decisions, "action", trigger).astype(bool)
    propensity = _filled(decisions, "propensity", trigger.astype(float)).astype(float)
    table = pd.DataFrame({
        "unit": decisions["patient_id"].astype(str).to_numpy(),
        "time": decided.to_numpy(),
        "action": action.astype(int),
        "probability": propensity,
        "outcome": _reengaged(decisions["decision_id"].astype(str), decided, outcomes, window),
        "tier": decisions["tier"].astype(str).to_numpy(),
    })
    for name in moderators:
        table[name] = pd.to_numeric(decisions[name], errors="coerce").to_numpy()
    return table.loc[closed].reset_index(drop=True)


def _filled(decisions: pd.DataFrame, column: str, fallback: np.ndarray) -> np.ndarray:
    """A policy column where it was recorded, the fallback (from the trigger) where it was not."""
    if column not in decisions.columns:
        return fallback
    values = pd.to_numeric(decisions[column], errors="coerce").to_numpy(dtype=float)
    return np.where(np.isnan(values), fallback.astype(float), values)


def _reengaged(decision_ids: pd.Series, decided: pd.Series, outcomes: pd.DataFrame, window: pd.Timedelta) -> np.ndarray:
    """1 where a re_engaged outcome of the decision is after it and within the window, else 0."""
    came_back = outcomes.loc[outcomes["kind"] == OutcomeKind.RE_ENGAGED.value, ["decision_id", "at"]]
    left = pd.DataFrame({"decision_id": decision_ids.to_numpy(), "decided": decided.to_numpy(),
                         "row": np.arange(len(decision_ids))})
    if came_back.empty:
        return np.zeros(len(left), dtype=int)
    came_back = came_back.assign(decision_id=came_back["decision_id"].astype(str),
                                 at=_utc(came_back["at"], "outcomes.at"))
    joined = left.merge(came_back, on="decision_id", how="inner")
    after = joined["at"] - joined["decided"]
    rows = joined.loc[(after > pd.Timedelta(0)) & (after <= window), "row"].unique()
    out = np.zeros(len(left), dtype=int)
    out[rows] = 1
    return out


def decisions_table_from_log(db_url: str, window_days: int = 7, moderators: Sequence[str] = (),
                             until: datetime | None = None, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """`build_decisions_table` over the decision log and outcomes stored in the database at `db_url`, with the
    feature values of `features` (joined on patient_id and as_of) available as moderators."""
    decisions = read_decision_log(db_url)
    if features is not None:
        decisions = with_features(decisions, features)
    return build_decisions_table(decisions, read_outcomes(db_url), window_days, moderators, until)


def unknown_decisions(decision_ids: Sequence[str], db_url: str) -> set[str]:
    """The ids among `decision_ids` that name no decision in the decision log (all of them if there is no log)."""
    wanted = {d for d in decision_ids if d.isdigit()}
    engine = make_engine(db_url)
    try:
        if not wanted or not sa.inspect(engine).has_table(DECISIONS_TABLE):
            return set(decision_ids)
        table = sa.Table(DECISIONS_TABLE, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
        numbers = sorted(int(d) for d in wanted)
        found: set[str] = set()
        with engine.connect() as connection:
            for start in range(0, len(numbers), 500):
                rows = connection.execute(sa.select(table.c.id).where(table.c.id.in_(numbers[start:start + 500])))
                found.update(str(row[0]) for row in rows)
    finally:
        engine.dispose()
    return set(decision_ids) - found


def check_decisions_exist(outcomes: Sequence[Outcome], db_url: str, where: str = "outcome") -> None:
    """Raise OutreachError naming the first outcome (by position) whose decision_id is not in the decision log."""
    missing = unknown_decisions([o.decision_id for o in outcomes], db_url)
    for position, outcome in enumerate(outcomes):
        if outcome.decision_id in missing:
            raise OutreachError(f"{where} {position + 1}: field 'decision_id': no such decision in the decision log "
                                f"({len(missing)} unknown decision id(s) in all); nothing was stored",
                                field="decision_id", position=position + 1)
