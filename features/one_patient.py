"""One patient's event-based features at one time, with scalar arithmetic: the request-time fast path.

`features/usage.py` answers many (patient, as-of) rows at once with array expressions; for a
single row, those ~300 numpy calls on one-element arrays cost far more than the work. Here
the same definitions are computed for one row: numpy across the patient's events, Python
scalars for the row's arithmetic, in the same operation order (sums sequential, as
`np.bincount` does), so the values equal the batch path's. tests/features/test_one_patient.py
checks that on many random patients: a change to a feature's definition goes in both places.
"""

from __future__ import annotations

import math

import numpy as np

from config import FeatureConfig
from features.contract import EventType as ET
from features.event_index import DAY_US, OWN, OWN_CODES, TYPE_CODES, TYPES
from features.usage import HOUR_MS, MINUTE_SCALE, NEVER, WEEK_DAYS, window_days
from features.windows import prefix

_NAN = math.nan


class _Events:
    """The patient's events at or before T, in time order (ties in input order), split by type."""

    def __init__(self, times: np.ndarray, types: np.ndarray, values: np.ndarray, T: int, days: tuple[int, ...]):
        order = np.argsort(times, kind="stable")
        order = order[(types[order] >= 0) & (times[order] <= T)]
        t, y, self.v = times[order], types[order], values[order]
        by_type = np.argsort(y, kind="stable")
        bounds = np.zeros(len(TYPES) + 1, dtype=np.int64)
        np.cumsum(np.bincount(y, minlength=len(TYPES)), out=bounds[1:])
        self._rows = {name: by_type[bounds[k]:bounds[k + 1]] for name, k in TYPE_CODES.items()}
        self._rows[OWN] = np.flatnonzero(OWN_CODES[y])
        self.t, self.T, self.days = t, T, days
        self._starts = T - np.asarray(days, dtype=np.int64) * DAY_US
        self._counts: dict[str, dict[int | None, float]] = {}
        self._times: dict[str, np.ndarray] = {}

    def times(self, stream: str) -> np.ndarray:
        times = self._times.get(stream)
        if times is None:
            times = self._times[stream] = self.t[self._rows[stream]]
        return times

    def values(self, stream: str) -> np.ndarray:
        return self.v[self._rows[stream]]

    def count(self, stream: str, days: int | None) -> float:
        """Events of the stream after T - days days (None: all so far)."""
        counts = self._counts.get(stream)
        if counts is None:
            times = self.times(stream)
            after = (len(times) - times.searchsorted(self._starts, side="right")).tolist()
            counts = self._counts[stream] = dict(zip(self.days, map(float, after)))
            counts[None] = float(len(times))
        return counts[days]

    def start(self, stream: str, days: int | None) -> int:
        """Position of the stream's first event in the window."""
        return 0 if days is None else int(self.times(stream).searchsorted(self.T - days * DAY_US, side="right"))

    def last(self, stream: str) -> float:
        values = self.values(stream)
        return float(values[-1]) if len(values) else _NAN

    def days_since_last(self, stream: str, elapsed: int) -> float:
        times = self.times(stream)
        return (self.T - int(times[-1])) / DAY_US if len(times) else elapsed / DAY_US


def _volume(e: _Events, config: FeatureConfig, elapsed: int, own_day: np.ndarray,
            first_of_day: np.ndarray) -> dict[str, float]:
    f = {"days_since_enrolment": elapsed / DAY_US,
         "days_since_last_engagement": e.days_since_last(OWN, elapsed),
         "days_since_last_session": e.days_since_last(ET.SESSION, elapsed),
         "days_since_last_module": e.days_since_last(ET.MODULE_COMPLETED, elapsed)}
    n_own = len(own_day)
    day_count = prefix(first_of_day)
    duration = e.values(ET.SESSION)
    unknown = np.isnan(duration)  # a session logged without a duration
    minutes = prefix(np.rint(np.where(unknown, 0.0, duration) * MINUTE_SCALE).astype(np.int64))
    n_unknown = prefix(unknown)
    for days in [*config.windows_days, None]:
        suffix = "total" if days is None else f"{days}d"
        for stem, stream in (("sessions", ET.SESSION), ("modules", ET.MODULE_COMPLETED),
                             ("exercises", ET.EXERCISE_COMPLETED), ("checkins", ET.MOOD_CHECKIN)):
            f[f"{stem}_{suffix}"] = e.count(stream, days)
        start = e.start(OWN, days)
        opens_mid_day = start < n_own and not first_of_day[start]
        f[f"active_days_{suffix}"] = float(int(day_count[n_own] - day_count[start]) + opens_mid_day)
        lo, hi = e.start(ET.SESSION, days), len(duration)
        # One session of unknown length makes the window's minutes unknown, not smaller.
        missing = n_unknown[hi] > n_unknown[lo]
        f[f"minutes_{suffix}"] = _NAN if missing else int(minutes[hi] - minutes[lo]) / MINUTE_SCALE
    return f


def _adherence(e: _Events, f: dict[str, float], config: FeatureConfig, elapsed: int) -> dict[str, float]:
    program = config.program
    days = elapsed / DAY_US
    weeks = days / 7 if days >= 1 else _NAN
    return {
        "modules_vs_pace": f["modules_total"] / (program.modules_per_week * weeks),
        "sessions_vs_recommended": f["sessions_total"] / (program.sessions_per_week * weeks),
        f"sessions_{WEEK_DAYS}d_vs_recommended": e.count(ET.SESSION, WEEK_DAYS) / program.sessions_per_week,
        "core_modules_share": min(f["modules_total"], program.core_modules) / program.core_modules,
    }


def _shape(e: _Events, f: dict[str, float], config: FeatureConfig, elapsed: int, own_day: np.ndarray,
           first_of_day: np.ndarray) -> dict[str, float]:
    trend, recent = max(config.windows_days), config.recent_share_days
    started_days = -(-elapsed // DAY_US)
    out: dict[str, float] = {}

    bins = min(max(started_days, 0), trend)
    if bins >= 2:
        day_back = (e.T - e.times(OWN)[e.start(OWN, trend):]) // DAY_US
        inside = day_back[day_back < bins]
        sum_back = float(np.bincount(np.zeros(len(inside), dtype=np.intp), inside, 1)[0])
        out[f"activity_slope_{trend}d"] = 6.0 * ((bins - 1) * len(inside) - 2.0 * sum_back) / (bins * (bins * bins - 1))
    else:
        out[f"activity_slope_{trend}d"] = _NAN

    d_day = own_day[first_of_day]
    n_days = len(d_day)
    out["current_streak_days"] = out["longest_streak_days"] = 0.0
    out["gap_days_sd"] = _NAN
    if n_days:
        idx = np.arange(n_days)
        run_start = np.ones(n_days, dtype=bool)
        run_start[1:] = d_day[1:] != d_day[:-1] + 1
        run_pos = idx - np.maximum.accumulate(np.where(run_start, idx, 0)) + 1
        if int(d_day[-1]) >= elapsed // DAY_US - 1:
            out["current_streak_days"] = float(run_pos[-1])
        out["longest_streak_days"] = float(run_pos.max())
        n_gaps = n_days - 1
        if n_gaps >= 2:
            gap = np.diff(d_day)
            s1, s2 = int(gap.sum()), int((gap * gap).sum())
            out["gap_days_sd"] = math.sqrt(max((n_gaps * s2 - s1 * s1) / float(n_gaps) ** 2, 0.0))
    out["active_day_share"] = f["active_days_total"] / started_days if started_days > 0 else _NAN
    in_trend = e.count(OWN, trend)
    out["recent_activity_share"] = e.count(OWN, recent) / in_trend if in_trend > 0 else _NAN
    return out


def _clinical(e: _Events, config: FeatureConfig, baseline_phq9: float, baseline_gad7: float) -> dict[str, float]:
    trend = max(config.windows_days)
    times, values = e.times(ET.MOOD_CHECKIN), e.values(ET.MOOD_CHECKIN)
    lo = e.start(ET.MOOD_CHECKIN, trend)
    x = (times[lo:] - e.T) / DAY_US
    y = values[lo:]
    n = float(len(x))
    mood_trend = _NAN
    if n >= 2 and int(times[-1] - times[lo]) >= config.mood_trend_min_span_days * DAY_US:
        # Sequential sums, as np.bincount adds them in the batch path.
        sx, sy, sxx, sxy = np.cumsum(np.stack([x, y, x * x, x * y]), axis=1)[:, -1].tolist()
        spread = n * sxx - sx * sx
        if spread > 0:
            mood_trend = 7.0 * (n * sxy - sx * sy) / spread
    latest_mood, latest_phq9 = e.last(ET.MOOD_CHECKIN), e.last(ET.PHQ9)
    return {
        "latest_mood": latest_mood,
        f"mood_trend_{trend}d": mood_trend,
        "mood_change_since_first": latest_mood - float(values[0]) if len(values) >= 2 else _NAN,
        "latest_phq9": latest_phq9,
        "phq9_change": latest_phq9 - baseline_phq9,
        "gad7_change": e.last(ET.GAD7) - baseline_gad7,
    }


def _support(e: _Events) -> dict[str, float]:
    coach, sent_times = e.times(ET.MESSAGE_FROM_COACH), e.times(ET.MESSAGE_TO_COACH)
    f = {
        f"coach_messages_{WEEK_DAYS}d": e.count(ET.MESSAGE_FROM_COACH, WEEK_DAYS),
        "coach_messages_total": e.count(ET.MESSAGE_FROM_COACH, None),
        f"messages_to_coach_{WEEK_DAYS}d": e.count(ET.MESSAGE_TO_COACH, WEEK_DAYS),
        "messages_to_coach_total": e.count(ET.MESSAGE_TO_COACH, None),
    }
    answered = int(coach.searchsorted(sent_times[-1], side="right")) if len(sent_times) else 0
    f["unanswered_coach_messages"] = float(len(coach) - answered)
    # A reply is the patient's first message after a coach message.
    prompt = coach.searchsorted(sent_times, side="right") - 1
    prompt_time = np.where(prompt >= 0, coach.take(prompt, mode="clip"), 0) if len(coach) else prompt * 0
    previous_sent = np.full(len(sent_times), NEVER)
    previous_sent[1:] = sent_times[:-1]
    is_reply = (prompt >= 0) & (previous_sent < prompt_time)
    n_replies = int(is_reply.sum())
    latency_ms = int(((sent_times - prompt_time) // 1000)[is_reply].sum())
    f["reply_latency_hours"] = latency_ms / n_replies / HOUR_MS if n_replies else _NAN
    f[f"reminders_sent_{WEEK_DAYS}d"] = e.count(ET.REMINDER_SENT, WEEK_DAYS)
    sent, opened = e.count(ET.REMINDER_SENT, None), e.count(ET.REMINDER_OPENED, None)
    f["reminder_open_rate"] = min(opened / sent, 1.0) if sent > 0 else _NAN
    return f


def one_patient_usage(times: np.ndarray, types: np.ndarray, values: np.ndarray, enrolled: int, T: int,
                      baseline_phq9: float, baseline_gad7: float, config: FeatureConfig) -> dict[str, float]:
    """Every event-based feature of one patient at time T (µs since the epoch, as are times and enrolled)."""
    e = _Events(times, types, values, T, window_days(config))
    elapsed = T - enrolled
    own = e.times(OWN)
    own_day = (own - enrolled) // DAY_US
    first_of_day = np.ones(len(own_day), dtype=bool)
    first_of_day[1:] = own_day[1:] != own_day[:-1]
    f = _volume(e, config, elapsed, own_day, first_of_day)
    f.update(_adherence(e, f, config, elapsed))
    f.update(_shape(e, f, config, elapsed, own_day, first_of_day))
    f.update(_clinical(e, config, baseline_phq9, baseline_gad7))
    f.update(_support(e))
    return f
