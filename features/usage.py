"""Event-based features of (patient, as-of) rows from one event index: volume, adherence, shape,
clinical and support.

Each family is a set of vectorised array expressions over all rows at once; every value of a
row depends only on that row's patient and as-of time, computed with integer arithmetic or a
fixed summation order, so a row's values do not depend on which other rows are in the batch.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from config import FeatureConfig
from features.contract import EventType as ET
from features.declared import daily_slope, declared_features, level_window_days
from features.event_index import DAY_US, OWN, EventIndex
from features.windows import RowWindows, expand, pick, prefix, take

HOUR_MS = 3_600_000.0
WEEK_DAYS = 7  # the adherence and support features look at the last week
MINUTE_SCALE = 1_000_000  # session minutes are summed as integer micro-minutes (exact, order-free)
NEVER = np.iinfo(np.int64).min  # a time before every event


def window_days(config: FeatureConfig) -> tuple[int, ...]:
    """Every look-back window (days before the as-of time) some feature needs, ascending."""
    declared = level_window_days() if config.events.own_types() else ()
    return tuple(sorted({*config.windows_days, WEEK_DAYS, config.recent_share_days, *declared}))


def _volume(w: RowWindows, config: FeatureConfig, first_of_day: np.ndarray) -> dict[str, np.ndarray]:
    """Recency, and counts, active days and minutes in each window and since enrolment."""
    # Every window at once: row k of each array below is windows[k]. One array operation per step, not one per
    # window, since for a few rows the number of operations is the cost.
    windows = (*config.windows_days, None)

    day_count = prefix(first_of_day)
    start, end = w.lo_each(OWN, windows), w.hi(OWN)
    inside = start < end
    # A range that opens mid-day still counts that day once.
    opens_mid_day = inside & ~pick(first_of_day, start)
    active_days = (day_count[end] - day_count[start] + opens_mid_day).astype(np.float64)

    duration = w.stream(ET.SESSION).value
    unknown = np.isnan(duration)  # a session logged without a duration
    minutes = prefix(np.rint(np.where(unknown, 0.0, duration) * MINUTE_SCALE).astype(np.int64))
    hi, lo = w.hi(ET.SESSION), w.lo_each(ET.SESSION, windows)
    session_minutes = (minutes[hi] - minutes[lo]) / MINUTE_SCALE
    if unknown.any():
        # One session of unknown length makes the window's minutes unknown, not smaller.
        n_unknown = prefix(unknown)
        session_minutes = np.where(n_unknown[hi] > n_unknown[lo], np.nan, session_minutes)

    # One block, a row per feature in the order of _volume_names: its rows are the features' values.
    block = np.concatenate([w.count_each(ET.SESSION, windows), active_days, session_minutes,
                            w.count_each(ET.MODULE_COMPLETED, windows), w.count_each(ET.EXERCISE_COMPLETED, windows),
                            w.count_each(ET.MOOD_CHECKIN, windows)])
    # After the windows: a stream's ends then come with its window bounds, found in the same search.
    f = {"days_since_enrolment": w.elapsed_days,
         "days_since_last_engagement": w.days_since_last(OWN),
         "days_since_last_session": w.days_since_last(ET.SESSION),
         "days_since_last_module": w.days_since_last(ET.MODULE_COMPLETED)}
    f.update(zip(_volume_names(config.windows_days), block))
    return f


@lru_cache(maxsize=16)
def _volume_names(windows_days: tuple[int, ...]) -> tuple[str, ...]:
    """The names of `_volume`'s block rows: each measure in each window, then since enrolment."""
    suffixes = [f"{days}d" for days in windows_days] + ["total"]
    return tuple(f"{stem}_{suffix}" for stem in ("sessions", "active_days", "minutes", "modules", "exercises",
                                                 "checkins") for suffix in suffixes)


def _patient_days(w: RowWindows, enrolled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each own-engagement event's patient-day (day 0 starts at enrolment) and whether it is the
    first event of that day."""
    own = w.stream(OWN)
    day = (own.time - enrolled[own.code]) // DAY_US
    first = np.empty(len(day), dtype=bool)
    first[:1] = True
    first[1:] = (own.code[1:] != own.code[:-1]) | (day[1:] != day[:-1])
    return day, first


def _adherence(w: RowWindows, f: dict[str, np.ndarray], config: FeatureConfig) -> dict[str, np.ndarray]:
    """Use so far against the program's recommended pace."""
    program = config.program
    days = w.elapsed_days
    weeks = np.where(days >= 1, days / 7, np.nan)
    return {
        "modules_vs_pace": f["modules_total"] / (program.modules_per_week * weeks),
        "sessions_vs_recommended": f["sessions_total"] / (program.sessions_per_week * weeks),
        f"sessions_{WEEK_DAYS}d_vs_recommended": w.count(ET.SESSION, WEEK_DAYS) / program.sessions_per_week,
        "core_modules_share": np.minimum(f["modules_total"], program.core_modules) / program.core_modules,
    }


def _shape(w: RowWindows, f: dict[str, np.ndarray], config: FeatureConfig,
           own_day: np.ndarray, first_of_day: np.ndarray) -> dict[str, np.ndarray]:
    """Trend of daily activity, streaks of active days, regularity and recent share of activity."""
    trend, recent = max(config.windows_days), config.recent_share_days
    own = w.stream(OWN)
    out: dict[str, np.ndarray] = {}

    # Least-squares slope of own-engagement events per day, over the window's days since enrolment.
    out[f"activity_slope_{trend}d"] = daily_slope(w, OWN, trend)

    # One entry per active patient-day: runs of consecutive days and the gaps between days.
    d_key, d_day, d_code = own.key[first_of_day], own_day[first_of_day], own.code[first_of_day]
    n_days = len(d_key)
    idx = np.arange(n_days)
    # Days since the patient's previous active day; 0 on a patient's first active day.
    gap = np.empty(n_days, dtype=np.int64)
    gap[:1] = 0
    np.multiply(d_day[1:] - d_day[:-1], d_code[1:] == d_code[:-1], out=gap[1:])
    run_start = gap != 1  # a patient's first day, or a day after a day without activity
    run_pos = idx - np.maximum.accumulate(np.where(run_start, idx, 0)) + 1
    offset = d_code.astype(np.int64) * (n_days + 1)  # keeps the running maximum within a patient
    longest = np.maximum.accumulate(run_pos + offset) - offset
    g1, g2 = prefix(gap), prefix(gap * gap)
    after_last_day = d_key.searchsorted(w.qT, side="right")
    last_day = after_last_day - 1
    first_day = d_key.searchsorted(w.start, side="left")
    any_day = last_day >= first_day
    # The current streak may end today (T's patient-day) or yesterday: today is not over yet.
    recent_day = pick(d_day, last_day)  # this and the streak's length are read only where any_day
    out["current_streak_days"] = np.where(any_day & (recent_day >= w.day_of_T - 1),
                                          pick(run_pos, last_day), 0).astype(np.float64)
    out["longest_streak_days"] = take(longest, last_day, any_day, 0).astype(np.float64)
    out["active_day_share"] = np.where(w.started_days > 0, f["active_days_total"] / w.started_days, np.nan)
    n_gaps = np.where(any_day, last_day - first_day, 0)
    # Gaps between the row's first and last active days: (a, b]. b is within 0..n_days as a search result is.
    a, b = np.minimum(first_day + 1, n_days), after_last_day
    s1, s2 = g1[b] - g1[a], g2[b] - g2[a]
    variance = (n_gaps * s2 - s1 * s1) / (n_gaps.astype(np.float64) ** 2)
    out["gap_days_sd"] = np.where(n_gaps >= 2, np.sqrt(np.maximum(variance, 0.0)), np.nan)
    in_trend = w.count(OWN, trend)
    out["recent_activity_share"] = np.where(in_trend > 0, w.count(OWN, recent) / in_trend, np.nan)
    return out


def _clinical(w: RowWindows, config: FeatureConfig, baseline_phq9: np.ndarray,
              baseline_gad7: np.ndarray) -> dict[str, np.ndarray]:
    """Latest mood, its trend and change, and PHQ-9 / GAD-7 change from baseline."""
    trend = max(config.windows_days)
    mood = w.stream(ET.MOOD_CHECKIN)
    latest_mood = w.last(ET.MOOD_CHECKIN, "value")
    lo, hi = w.lo(ET.MOOD_CHECKIN, trend), w.hi(ET.MOOD_CHECKIN)
    rows, ev = expand(lo, hi)
    x = (mood.time[ev] - w.T[rows]) / DAY_US
    y = mood.value[ev]
    n = np.bincount(rows, minlength=w.n_rows).astype(np.float64)
    sx, sy = np.bincount(rows, x, w.n_rows), np.bincount(rows, y, w.n_rows)
    sxx, sxy = np.bincount(rows, x * x, w.n_rows), np.bincount(rows, x * y, w.n_rows)
    # Check-ins bunched within a day or two give wild slopes: require them spread out.
    pair = n >= 2
    span = pick(mood.time, hi - 1) - pick(mood.time, lo)  # read only where pair
    spread = n * sxx - sx * sx
    ok = pair & (span >= config.mood_trend_min_span_days * DAY_US) & (spread > 0)
    mood_trend = np.where(ok, 7.0 * (n * sxy - sx * sy) / spread, np.nan)
    first = w.first(ET.MOOD_CHECKIN)
    n_mood = hi - first
    first_mood = pick(mood.value, first)  # read only where n_mood >= 2
    latest_phq9 = w.last(ET.PHQ9, "value")
    return {
        "latest_mood": latest_mood,
        f"mood_trend_{trend}d": mood_trend,
        "mood_change_since_first": np.where(n_mood >= 2, latest_mood - first_mood, np.nan),
        "latest_phq9": latest_phq9,
        "phq9_change": latest_phq9 - baseline_phq9[w.codes],
        "gad7_change": w.last(ET.GAD7, "value") - baseline_gad7[w.codes],
    }


def _support(w: RowWindows) -> dict[str, np.ndarray]:
    """Coach messages, the patient's messages and reply latency, reminders and their open rate."""
    coach, to_coach = w.stream(ET.MESSAGE_FROM_COACH), w.stream(ET.MESSAGE_TO_COACH)
    ix = w.ix
    f = {
        f"coach_messages_{WEEK_DAYS}d": w.count(ET.MESSAGE_FROM_COACH, WEEK_DAYS),
        "coach_messages_total": w.count(ET.MESSAGE_FROM_COACH, None),
        f"messages_to_coach_{WEEK_DAYS}d": w.count(ET.MESSAGE_TO_COACH, WEEK_DAYS),
        "messages_to_coach_total": w.count(ET.MESSAGE_TO_COACH, None),
    }
    has_sent = w.has_any(ET.MESSAGE_TO_COACH)
    last_sent = w.last(ET.MESSAGE_TO_COACH, "time", 0)
    # The patient's own key of that time (an event's time needs no clipping into the index's span; rows
    # without a message take the other branch).
    after_reply = np.where(has_sent, ix.upto(ET.MESSAGE_FROM_COACH, w.start + (last_sent - ix.base)),
                           w.first(ET.MESSAGE_FROM_COACH))
    f["unanswered_coach_messages"] = (w.hi(ET.MESSAGE_FROM_COACH) - after_reply).astype(np.float64)

    # A reply is the patient's first message after a coach message; its latency is known once sent.
    prompt = coach.key.searchsorted(to_coach.key, side="right") - 1
    prompt_ok = prompt >= coach.key.searchsorted(to_coach.code.astype(np.int64) * ix.span, side="left")
    prompt_time = pick(coach.time, prompt)  # read only where prompt_ok
    previous_sent = np.empty(len(to_coach.key), dtype=np.int64)  # the patient's previous message, if any
    previous_sent[:1] = NEVER
    previous_sent[1:] = np.where(to_coach.code[1:] == to_coach.code[:-1], to_coach.time[:-1], NEVER)
    is_reply = prompt_ok & (previous_sent < prompt_time)
    latency_ms = prefix((to_coach.time - prompt_time) // 1000 * is_reply)  # 0 where not a reply
    replies = prefix(is_reply)
    hi, lo = w.hi(ET.MESSAGE_TO_COACH), w.first(ET.MESSAGE_TO_COACH)
    n_replies = replies[hi] - replies[lo]
    f["reply_latency_hours"] = np.where(n_replies > 0, (latency_ms[hi] - latency_ms[lo]) / n_replies / HOUR_MS,
                                        np.nan)
    f[f"reminders_sent_{WEEK_DAYS}d"] = w.count(ET.REMINDER_SENT, WEEK_DAYS)
    sent = w.count(ET.REMINDER_SENT, None)
    opened = w.count(ET.REMINDER_OPENED, None)
    f["reminder_open_rate"] = np.where(sent > 0, np.minimum(opened / sent, 1.0), np.nan)
    return f


def usage_features(ix: EventIndex, codes: np.ndarray, T: np.ndarray, enrolled: np.ndarray, baseline_phq9: np.ndarray,
                   baseline_gad7: np.ndarray, config: FeatureConfig,
                   days: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Every event-based feature for rows (patient code, as-of time) of one event index.

    `days` is `window_days(config)`, for a caller that keeps it. Ratios of nothing are NaN by design, so numpy's
    divide and invalid warnings are off here.
    """
    days = window_days(config) if days is None else days
    with np.errstate(divide="ignore", invalid="ignore"):
        w = RowWindows(ix, codes, T, enrolled, days)
        own_day, first_of_day = _patient_days(w, enrolled)
        f = _volume(w, config, first_of_day)
        f.update(_adherence(w, f, config))
        f.update(_shape(w, f, config, own_day, first_of_day))
        f.update(_clinical(w, config, baseline_phq9, baseline_gad7))
        f.update(_support(w))
        if config.events.types:
            f.update(declared_features(w, config, enrolled))
    return f
