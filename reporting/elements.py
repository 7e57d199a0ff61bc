"""The engagement reporting elements, computed from a cohort: one row of usage per patient, then
uptake, level of use, duration of use and completion as aggregates over any set of those rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from config import EventsConfig, LabelConfig, ProgramConfig, ReportConfig
from features.contract import EventType
from features.vocabulary import vocabulary
from reporting.survival import kaplan_meier

DAY = pd.Timedelta(days=1)
EVENT_TYPES: tuple[str, ...] = tuple(str(t) for t in EventType)
LEVEL_MEASURES: dict[str, str] = {
    "sessions": "Sessions",
    "minutes": "Minutes in sessions",
    "modules": "Modules completed",
    "checkins": "Mood check-ins",
}


def active_column(week: int) -> str:
    """Name of the usage column saying whether a patient used the program in week `week`."""
    return f"active_w{week}"


def dose_column(week: int) -> str:
    """Name of the usage column saying whether a patient met the recommended sessions in week `week`."""
    return f"dose_w{week}"


def patient_usage(
    patients: pd.DataFrame,
    events: pd.DataFrame,
    data_end: pd.Timestamp,
    program: ProgramConfig = ProgramConfig(),
    labels: LabelConfig = LabelConfig(),
    config: ReportConfig = ReportConfig(),
    events_config: EventsConfig = EventsConfig(),
) -> pd.DataFrame:
    """Return one row per patient enrolled by data_end with the usage facts every element is built from.

    Use is the patient's own engagement: lapse's own-engagement types and the program's declared ones
    (`[events]`, `events_config`).

    Columns: patient_id, follow_up_days, used, first_use_days, uptake_observed, used_within,
    window_observed, sessions, minutes, modules, checkins, completed, active_w1.., dose_w1..,
    dropout_day, dropout_event, dropout_assessable. Events after data_end or before the patient's
    enrolment are ignored (see `excluded_counts`).
    """
    patients = patients.loc[patients["enrolled_at"] <= data_end, ["patient_id", "enrolled_at"]]
    n = len(patients)
    usage = pd.DataFrame({"patient_id": patients["patient_id"].to_numpy()})
    follow_up = ((data_end - patients["enrolled_at"]) / DAY).to_numpy(dtype=float)
    usage["follow_up_days"] = follow_up
    words = vocabulary(events_config)
    ev = _events_in_follow_up(patients, events, data_end, [n for n, own in zip(words.names, words.own) if own])
    row, kind, days, value = ev["row"], ev["kind"], ev["days"], ev["value"]

    own = ev["own"]
    first_use = _per_patient(np.minimum, row[own], days[own], n)
    last_use = _per_patient(np.maximum, row[own], days[own], n)
    usage["used"] = ~np.isnan(first_use)
    usage["first_use_days"] = first_use
    usage["uptake_observed"] = follow_up >= config.uptake_days
    usage["used_within"] = first_use < config.uptake_days

    window = 7 * config.weeks
    usage["window_observed"] = follow_up >= window
    in_window = days < window
    session = in_window & (kind == _code(EventType.SESSION))
    usage["sessions"] = np.bincount(row[session], minlength=n).astype(float)
    usage["minutes"] = np.bincount(row[session], weights=np.nan_to_num(value[session]), minlength=n)
    usage["modules"] = _modules_completed(row, kind, value, in_window, n)
    checkin = in_window & (kind == _code(EventType.MOOD_CHECKIN))
    usage["checkins"] = np.bincount(row[checkin], minlength=n).astype(float)
    usage["completed"] = usage["modules"].to_numpy() >= program.core_modules

    active = _weekly_counts(row[own & in_window], days[own & in_window], n, config.weeks)
    weekly_sessions = _weekly_counts(row[session], days[session], n, config.weeks)
    for week in range(1, config.weeks + 1):
        usage[active_column(week)] = active[:, week - 1] > 0
        usage[dose_column(week)] = weekly_sessions[:, week - 1] >= program.sessions_per_week

    disc = kind == _code(EventType.DISCONTINUED)
    discontinued = _per_patient(np.minimum, row[disc], days[disc], n)
    day, observed, assessable = dropout_times(follow_up, first_use, last_use, discontinued, labels)
    usage["dropout_day"] = day
    usage["dropout_event"] = observed
    usage["dropout_assessable"] = assessable
    return usage


def excluded_counts(patients: pd.DataFrame, events: pd.DataFrame, data_end: pd.Timestamp) -> dict[str, int]:
    """Count what the report leaves out: patients enrolled after data_end, events after data_end
    and events timed before their patient's enrolment."""
    enrolled = pd.Series(patients["enrolled_at"].to_numpy(), index=patients["patient_id"].to_numpy())
    enrolled_at = events["patient_id"].map(enrolled)
    return {
        "patients_enrolled_after_data_end": int((patients["enrolled_at"] > data_end).sum()),
        "events_after_data_end": int((events["timestamp"] > data_end).sum()),
        "events_before_enrolment": int(((events["timestamp"] < enrolled_at) & (events["timestamp"] <= data_end)).sum()),
    }


def dropout_times(
    follow_up_days: np.ndarray,
    first_use_days: np.ndarray,
    last_use_days: np.ndarray,
    discontinued_days: np.ndarray,
    labels: LabelConfig = LabelConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dropout_day, event, assessable) per patient for the Kaplan-Meier curve of time to dropout.

    Time is counted in whole days since enrolment: a patient who drops out with last use on day k
    (0-based) has dropout_day = k + 1, so survival S(t) is the share still using t days after
    enrolment or later. With H = labels.horizon_days and the last day on which H later days are
    fully observed, C = floor(follow_up - H):
    - inactivity: an event at floor(last use) + 1 when that is <= C (H days without own engagement
      were observed before data_end), else censored at C;
    - discontinuation: an event at floor(first discontinued) + 1, else censored at floor(follow_up);
    - either: the earlier of the two events, else censored at C.
    Only patients with own engagement are assessable, and only if their censoring day is >= 1.
    """
    follow_up_days = np.asarray(follow_up_days, dtype=float)
    horizon = np.floor(follow_up_days - labels.horizon_days)
    inactive_day = np.floor(np.asarray(last_use_days, dtype=float)) + 1
    inactivity = inactive_day <= horizon  # NaN (no use) compares False
    disc_day = np.floor(np.asarray(discontinued_days, dtype=float)) + 1
    discontinued = ~np.isnan(disc_day)
    if labels.definition == "inactivity":
        event, day = inactivity, np.where(inactivity, inactive_day, horizon)
    elif labels.definition == "discontinuation":
        event, day = discontinued, np.where(discontinued, disc_day, np.floor(follow_up_days))
    elif labels.definition == "either":
        candidate = np.fmin(np.where(inactivity, inactive_day, np.nan), np.where(discontinued, disc_day, np.nan))
        event = ~np.isnan(candidate)
        day = np.where(event, candidate, horizon)
    else:
        raise ValueError(f"unknown dropout definition {labels.definition!r} (inactivity, discontinuation, either)")
    used = ~np.isnan(np.asarray(first_use_days, dtype=float))
    assessable = used & (event | (day >= 1))
    return day, event & assessable, assessable


def share(flags: pd.Series) -> dict:
    """Count and share of True among the given patients."""
    n = int(flags.size)
    count = int(flags.sum())
    return {"n": n, "count": count, "share": count / n if n else None}


def summary(values: pd.Series) -> dict:
    """Median and interquartile range of the given values, ignoring missing ones."""
    values = values.dropna().to_numpy(dtype=float)
    if values.size == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None}
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": int(values.size), "median": float(median), "q1": float(q1), "q3": float(q3)}


def uptake(usage: pd.DataFrame) -> dict:
    """Uptake: any own engagement by data_end, own engagement within the first days, days to first use."""
    observed = usage[usage["uptake_observed"]]
    return {
        "any_use": share(usage["used"]),
        "within_days": share(observed["used_within"]),
        "days_to_first_use": summary(usage.loc[usage["used"], "first_use_days"]),
    }


def level_of_use(usage: pd.DataFrame) -> dict:
    """Level of use over the reporting window per patient observed through it: median and IQR."""
    observed = usage[usage["window_observed"]]
    return {name: summary(observed[name]) for name in LEVEL_MEASURES}


def weekly_activity(usage: pd.DataFrame, weeks: int) -> list[dict]:
    """Per week 1..weeks: share active and share meeting the session dose, among patients observed through it."""
    rows = []
    for week in range(1, weeks + 1):
        observed = usage[usage["follow_up_days"] >= 7 * week]
        rows.append(
            {
                "week": week,
                "active": share(observed[active_column(week)]),
                "dose_met": share(observed[dose_column(week)]),
            }
        )
    return rows


def dropout_survival(usage: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Kaplan-Meier estimate of time to dropout (whole days) among assessable patients."""
    assessable = usage[usage["dropout_assessable"]]
    return kaplan_meier(assessable["dropout_day"].to_numpy(), assessable["dropout_event"].to_numpy(), confidence)


def completion(usage: pd.DataFrame) -> dict:
    """Completion: share reaching the recommended dose within the window, among patients observed through it."""
    return share(usage.loc[usage["window_observed"], "completed"])


def _events_in_follow_up(patients: pd.DataFrame, events: pd.DataFrame, data_end: pd.Timestamp,
                         own_names: list[str]) -> dict[str, np.ndarray]:
    """Events of the given patients between enrolment and data_end as arrays: row (the patient's
    position in `patients`), kind (position in EVENT_TYPES), days since enrolment and value."""
    row = _positions(events["patient_id"], patients["patient_id"])
    enrolled = _utc_instants(patients["enrolled_at"])
    ts = _utc_instants(events["timestamp"])
    known = row >= 0
    days = np.full(len(events), np.nan)
    days[known] = (ts[known] - enrolled[row[known]]) / np.timedelta64(1, "D")
    keep = known & (ts <= data_end.tz_convert("UTC").tz_localize(None).to_datetime64()) & (days >= 0)
    return {
        "row": row[keep],
        "kind": _positions(events["event_type"], pd.Series(EVENT_TYPES))[keep],
        "own": (_positions(events["event_type"], pd.Series(own_names)) >= 0)[keep],
        "days": days[keep],
        "value": events["value"].to_numpy(dtype=float)[keep],
    }


def _positions(values: pd.Series, lookup: pd.Series) -> np.ndarray:
    """Position of each value in `lookup` (-1 where absent), via Arrow: fast on text columns."""
    found = pc.index_in(pa.array(values, type=pa.large_string()), value_set=pa.array(lookup, type=pa.large_string()))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _code(event_type: EventType) -> int:
    return EVENT_TYPES.index(str(event_type))


def _utc_instants(column: pd.Series) -> np.ndarray:
    """A tz-aware column as naive UTC datetime64 values, for numpy arithmetic."""
    return column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


def _per_patient(reduce: np.ufunc, row: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """reduce (np.minimum / np.maximum) of values per patient row; NaN where a patient has none."""
    out = np.full(n, np.inf if reduce is np.minimum else -np.inf)
    reduce.at(out, row, values)
    out[np.isinf(out)] = np.nan
    return out


def _modules_completed(row, kind, value, in_window, n: int) -> np.ndarray:
    """Modules completed per patient: distinct module numbers, plus each completion without a number."""
    module = in_window & (kind == _code(EventType.MODULE_COMPLETED))
    numbered = module & ~np.isnan(value)
    pairs = np.unique(np.column_stack([row[numbered], value[numbered]]), axis=0)
    counts = np.bincount(pairs[:, 0].astype(int), minlength=n) if len(pairs) else np.zeros(n, dtype=int)
    return (counts + np.bincount(row[module & np.isnan(value)], minlength=n)).astype(float)


def _weekly_counts(row: np.ndarray, days: np.ndarray, n: int, weeks: int) -> np.ndarray:
    """Events per patient row (rows) and week since enrolment (columns 0..weeks-1)."""
    week = (days // 7).astype(int)
    return np.bincount(row * weeks + week, minlength=n * weeks).reshape(n, weeks)
