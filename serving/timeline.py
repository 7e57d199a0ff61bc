"""The engagement timeline of one patient, from a data folder's patients and events tables.

`CohortSource` reads the folder (validated by the data contract) on first use and again
when its tables change; `engagement_timeline` turns one patient's events into day-by-day
counts for the days before a score. Nothing here logs patient values.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import OWN_ENGAGEMENT, EventType

log = logging.getLogger("lapse.serving.timeline")
DAY = pd.Timedelta(days=1)

# What the timeline counts per day: (key, event types).
COUNTS: tuple[tuple[str, tuple[EventType, ...]], ...] = (
    ("sessions", (EventType.SESSION,)),
    ("modules", (EventType.MODULE_COMPLETED,)),
    ("exercises", (EventType.EXERCISE_COMPLETED,)),
    ("checkins", (EventType.MOOD_CHECKIN,)),
    ("questionnaires", (EventType.PHQ9, EventType.GAD7)),
    ("to_coach", (EventType.MESSAGE_TO_COACH,)),
    ("from_coach", (EventType.MESSAGE_FROM_COACH,)),
    ("reminders", (EventType.REMINDER_SENT,)),
    ("left", (EventType.DISCONTINUED,)),
)
_OWN = tuple(t.value for t in OWN_ENGAGEMENT)


def instants(stamps: pd.Series) -> np.ndarray:
    """Times as plain UTC datetime64 (a tz-aware column's to_numpy() gives slow Timestamp objects)."""
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


@dataclass(frozen=True)
class PatientRecord:
    """One patient's row of the patients table (a one-row frame) and their events (sorted by time)."""

    patients: pd.DataFrame
    events: pd.DataFrame

    @property
    def profile(self) -> pd.Series:
        """The patient's row of the patients table."""
        return self.patients.iloc[0]


@dataclass(frozen=True)
class _Loaded:
    patients: pd.DataFrame
    events: pd.DataFrame
    row_of: pd.Index  # patient_id -> patients row
    starts: np.ndarray  # events of patients row i are events[starts[i]:starts[i + 1]]
    stamp: tuple


class CohortSource:
    """A data folder's cohort, read when first needed and re-read when its tables change."""

    def __init__(self, data_dir: str | Path | None, check_seconds: float = 30.0) -> None:
        self.data_dir = Path(data_dir) if data_dir else None
        self.check_seconds = check_seconds
        self._loaded: _Loaded | None = None
        self._checked_at = -np.inf
        self._problem: str | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """Whether the service was given a data folder."""
        return self.data_dir is not None

    @property
    def problem(self) -> str | None:
        """Why the data folder could not be used, if it could not."""
        if self.data_dir is None:
            return "the service was started without a data folder (lapse serve --data DIR)"
        return self._problem

    def _stamp(self) -> tuple:
        from features.io import find_table

        paths = [find_table(self.data_dir, name) for name in ("patients", "events")]
        return tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in paths)

    def _load(self, stamp: tuple) -> _Loaded:
        from features.validate import load_cohort

        cohort = load_cohort(self.data_dir)
        patients = cohort.patients.reset_index(drop=True)
        row_of = pd.Index(patients["patient_id"])
        owner = row_of.get_indexer(cohort.events["patient_id"])
        order = np.lexsort((instants(cohort.events["timestamp"]), owner))
        events = cohort.events.iloc[order].reset_index(drop=True)
        starts = np.searchsorted(owner[order], np.arange(len(patients) + 1))
        return _Loaded(patients, events, row_of, starts, stamp)

    def _current(self) -> _Loaded | None:
        if self.data_dir is None:
            return None
        with self._lock:
            now = time.monotonic()
            if self._loaded is not None and now - self._checked_at < self.check_seconds:
                return self._loaded
            self._checked_at = now
            try:
                stamp = self._stamp()
                if self._loaded is None or self._loaded.stamp != stamp:
                    self._loaded = self._load(stamp)
                    self._problem = None
            except Exception as error:  # noqa: BLE001 - the page must keep working without a timeline
                from features.validate import ContractError

                # Contract reports name files, columns and rows, never values.
                self._problem = ("the data folder breaks the data contract" if isinstance(error, ContractError)
                                 else f"the data folder could not be read ({type(error).__name__})")
                log.warning("clinician page: %s", self._problem)
                self._loaded = None
            return self._loaded

    def warm(self) -> None:
        """Read the folder now (at service start, in a background thread), so the first page load need not."""
        self._current()

    def records(self, patient_ids: list[str]) -> PatientRecord | None:
        """The patients table rows and events of those of `patient_ids` the folder holds (None if unusable)."""
        loaded = self._current()
        if loaded is None:
            return None
        rows = loaded.row_of.get_indexer(pd.Index(patient_ids).unique())
        rows = np.sort(rows[rows >= 0])
        lo, hi = loaded.starts[rows], loaded.starts[rows + 1]
        sizes = hi - lo
        # Positions lo..hi-1 of every chosen patient, without a Python loop.
        take = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes) + np.repeat(lo, sizes)
        return PatientRecord(loaded.patients.iloc[rows].reset_index(drop=True),
                             loaded.events.iloc[take].reset_index(drop=True))

    def patient(self, patient_id: str) -> PatientRecord | None:
        """The patient's profile and events, or None if the folder lacks the patient (or is unusable)."""
        loaded = self._current()
        if loaded is None:
            return None
        row = loaded.row_of.get_indexer([patient_id])[0]
        if row < 0:
            return None
        events = loaded.events.iloc[loaded.starts[row]:loaded.starts[row + 1]]
        return PatientRecord(loaded.patients.iloc[[row]].reset_index(drop=True), events)


def engagement_timeline(events: pd.DataFrame, enrolled_at: pd.Timestamp, end: pd.Timestamp,
                        days: int) -> dict:
    """Day-by-day engagement over the `days` days before `end` (the score's as-of time).

    Day 1 is the 24 hours before `end`, day 2 the 24 hours before that, and so on; events at
    or after `end` are left out, as the score could not see them.
    """
    end = pd.Timestamp(end).tz_convert("UTC")
    enrolled_at = pd.Timestamp(enrolled_at).tz_convert("UTC")
    stamps = events["timestamp"]
    age = ((end - stamps) / DAY).to_numpy(dtype=np.float64)
    before = age > 0
    day = np.ceil(age).astype(np.int64)
    seen = before & (day <= days)
    types = events["event_type"].to_numpy(dtype=object)
    counts = {}
    for key, kinds in COUNTS:
        mask = seen & np.isin(types, [k.value for k in kinds])
        counts[key] = np.bincount(day[mask], minlength=days + 1)[1:]
    own = seen & np.isin(types, _OWN)
    activity = np.bincount(day[own], minlength=days + 1)[1:]
    session = seen & (types == EventType.SESSION.value)
    minutes = np.bincount(day[session], weights=events["value"].fillna(0.0).to_numpy()[session],
                          minlength=days + 1)[1:]
    own_before = before & np.isin(types, _OWN)
    last_activity = float(age[own_before].min()) if own_before.any() else None
    stopped = before & (types == EventType.DISCONTINUED.value)
    rows = []
    for d in range(days, 0, -1):
        day_end = end - (d - 1) * DAY
        rows.append({
            "days_before": d,
            "date": (day_end - pd.Timedelta(microseconds=1)).date().isoformat(),
            "enrolled": bool(day_end > enrolled_at),
            "activity": int(activity[d - 1]),
            "minutes": round(float(minutes[d - 1]), 1),
            **{key: int(values[d - 1]) for key, values in counts.items()},
        })
    enrolled_days = sum(r["enrolled"] for r in rows)
    return {
        "end": end.isoformat(),
        "enrolled_at": enrolled_at.isoformat(),
        "days": rows,
        "active_days": int((activity > 0).sum()),
        "enrolled_days": int(enrolled_days),
        # Rounded as the reason sentences round it ("No activity for 9 days").
        "last_activity_days": None if last_activity is None else int(f"{last_activity:.0f}"),
        "discontinued_at": stamps[stopped].min().isoformat() if stopped.any() else None,
    }


# The values the patient page charts over time: (key, event type, words, scale top).
MEASURES: tuple[tuple[str, EventType, str, float], ...] = (
    ("mood", EventType.MOOD_CHECKIN, "Mood (0-10, 10 best)", 10.0),
    ("phq9", EventType.PHQ9, "PHQ-9 (0-27, lower is better)", 27.0),
    ("gad7", EventType.GAD7, "GAD-7 (0-21, lower is better)", 21.0),
)


def measures(events: pd.DataFrame, end: pd.Timestamp, profile: pd.Series | None = None) -> list[dict]:
    """The patient's mood ratings and PHQ-9/GAD-7 totals before `end`, oldest first, one series per measure;
    the enrolment PHQ-9/GAD-7 of the patients table (`profile`) come first, at the enrolment time."""
    end = pd.Timestamp(end).tz_convert("UTC")
    seen = events[(events["timestamp"] < end) & events["value"].notna()]
    out = []
    for key, kind, words, top in MEASURES:
        rows = seen[seen["event_type"] == kind.value]
        points = [{"at": t.isoformat(), "value": round(float(v), 1), "baseline": False}
                  for t, v in zip(rows["timestamp"], rows["value"])]
        start = None if profile is None else profile.get(f"baseline_{key}")
        if start is not None and not pd.isna(start):
            points.insert(0, {"at": pd.Timestamp(profile["enrolled_at"]).isoformat(), "value": round(float(start), 1),
                              "baseline": True})
        out.append({"key": key, "label": words, "max": top, "points": points})
    return out
