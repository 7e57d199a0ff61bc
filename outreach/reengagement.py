"""Re-engagement outcomes derived from new events: the patient's own use within the window after a decision.

"Own use" is the feature code's notion (features.contract.OWN_ENGAGEMENT: sessions, modules,
exercises, check-ins, questionnaires, messages to the coach); coach messages and reminders are
things done to the patient and do not count. The outcome id is derived from the decision id, so
deriving again after more events arrive stores nothing twice.
"""

from __future__ import annotations

import pandas as pd

from features.contract import OWN_ENGAGEMENT
from outreach.errors import OutreachError
from outreach.outcomes import Outcome, OutcomeKind

DECISION_COLUMNS = ("decision_id", "patient_id", "decided_at")
EVENT_COLUMNS = ("patient_id", "timestamp", "event_type")


def _utc(series: pd.Series, what: str) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_convert("UTC").dt.as_unit("us")
    try:
        parsed = pd.to_datetime(series, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        raise OutreachError(f"{what}: not ISO 8601 times", field=what) from None
    return parsed.dt.as_unit("us")


def reengagement_outcomes(decisions: pd.DataFrame, events: pd.DataFrame, window_days: int = 7) -> list[Outcome]:
    """One `re_engaged` outcome per decision whose patient used the program within `window_days` after it.

    `decisions` has decision_id, patient_id, decided_at (the decision time); `events` is a contract
    events table. The outcome's time is the first own-engagement event after the decision time.
    """
    if window_days < 1:
        raise OutreachError("window_days must be at least 1", field="window_days")
    for table, columns, name in ((decisions, DECISION_COLUMNS, "decisions"), (events, EVENT_COLUMNS, "events")):
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise OutreachError(f"{name}: missing column(s) {', '.join(missing)}", field=missing[0])
    own_types = {t.value for t in OWN_ENGAGEMENT}
    own = events.loc[events["event_type"].astype(str).isin(own_types), ["patient_id", "timestamp"]]
    own = pd.DataFrame({"patient_id": own["patient_id"].astype(str).to_numpy(),
                        "event_at": _utc(own["timestamp"], "events.timestamp").to_numpy()})
    left = pd.DataFrame({"decision_id": decisions["decision_id"].astype(str).to_numpy(),
                         "patient_id": decisions["patient_id"].astype(str).to_numpy(),
                         "decided_at": _utc(decisions["decided_at"], "decisions.decided_at").to_numpy()})
    if left["decided_at"].isna().any():
        raise OutreachError("decisions.decided_at: a decision has no time", field="decided_at")
    own = own.dropna().sort_values("event_at", kind="stable")
    left = left.sort_values("decided_at", kind="stable")
    # The first own event strictly after each decision, for the same patient.
    joined = pd.merge_asof(left, own, left_on="decided_at", right_on="event_at", by="patient_id",
                           direction="forward", allow_exact_matches=False)
    window = pd.Timedelta(days=window_days)
    hit = joined["event_at"].notna() & (joined["event_at"] - joined["decided_at"] <= window)
    return [
        Outcome(outcome_id=f"re_engaged:{row.decision_id}", decision_id=row.decision_id,
                kind=OutcomeKind.RE_ENGAGED, at=row.event_at.to_pydatetime())
        for row in joined.loc[hit].itertuples(index=False)
    ]

