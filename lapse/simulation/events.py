"""Turning simulated daily activity into contract event rows with timestamps and values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lapse.features.contract import EventType
from lapse.config import SimulationConfig
from lapse.simulation.cohort import DAY_US, HOUR_US, enrolled_us
from lapse.simulation.engagement import engagement_level

EVENT_CODES: dict[EventType, int] = {t: i for i, t in enumerate(EventType)}
MINUTE_US = 60 * 1_000_000


class EventArrays:
    """Event rows of one chunk as parallel numpy arrays (patient = row index in the chunk)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray, int, np.ndarray]] = []

    def add(self, kind: EventType, patient: np.ndarray, offset_us: np.ndarray, day: np.ndarray, value=None) -> None:
        """Append events of one type: patient row, day index, offset within that day and value."""
        times = day.astype(np.int64) * DAY_US + offset_us.astype(np.int64)
        values = np.full(len(patient), np.nan) if value is None else np.asarray(value, dtype=np.float64)
        self._parts.append((patient.astype(np.int64), times, EVENT_CODES[kind], values))

    def concat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return (patient row, microseconds since enrolment, event code, value) of all events."""
        patient = np.concatenate([p for p, _, _, _ in self._parts])
        since_enrol = np.concatenate([t for _, t, _, _ in self._parts])
        code = np.concatenate([np.full(len(p), c, dtype=np.int8) for p, _, c, _ in self._parts])
        value = np.concatenate([v for _, _, _, v in self._parts])
        return patient, since_enrol, code, value


def _day_offset(clock_hour: np.ndarray, enrol_time_us: np.ndarray) -> np.ndarray:
    """Microseconds into a patient's day for a wall-clock hour, strictly inside the day."""
    clock_us = (np.mod(clock_hour, 24.0) * HOUR_US).astype(np.int64)
    return np.clip(np.mod(clock_us - enrol_time_us, DAY_US), 1_000_000, DAY_US - 1_000_000)


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patient row and day of each event, given event counts per patient x day."""
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size, dtype=np.int64), flat)
    return cell // counts.shape[1], cell % counts.shape[1]


def _days_since_last_use(active: np.ndarray) -> np.ndarray:
    """Whole days since the last active day before day k (k + 1 when there was none)."""
    k = np.arange(active.shape[1])
    last = np.maximum.accumulate(np.where(active, k, -1), axis=1)
    before = np.concatenate([np.full((active.shape[0], 1), -1), last[:, :-1]], axis=1)
    return k - before


def draw_events(
    patients: pd.DataFrame,
    latent: pd.DataFrame,
    active: np.ndarray,
    quit_day: np.ndarray,
    discontinued: np.ndarray,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> EventArrays:
    """Draw every event of a chunk of patients from their daily activity."""
    n, days = active.shape
    k = np.arange(days)[None, :]
    enrol_time = enrolled_us(patients) % DAY_US
    support = patients["human_support"].to_numpy(dtype=bool)
    out = EventArrays()

    # Each patient has a favourite time of day: morning, lunch or evening.
    preferred = np.array([8.0, 12.5, 20.5])[rng.choice(3, size=n, p=[0.3, 0.2, 0.5])] + rng.normal(0, 1.0, n)

    def own_offsets(rows: np.ndarray) -> np.ndarray:
        return _day_offset(preferred[rows] + rng.normal(0.0, 1.5, len(rows)), enrol_time[rows])

    # Sessions: at least one on every active day, more while engagement is high.
    level = engagement_level(latent, k)
    intensity = latent["intensity"].to_numpy()[:, None]
    extra = config.extra_sessions_rate * intensity * level**config.extra_sessions_power
    sessions = active * (1 + rng.poisson(extra))
    rows, day = _expand(sessions)
    # Engaged patients also stay longer: the median scales with 0.5 + engagement level.
    median = config.session_minutes_median * rng.lognormal(0.0, 0.3, n)[rows] * (0.5 + level[rows, day])
    minutes = np.clip(median * rng.lognormal(0.0, config.session_minutes_sigma, len(rows)), 0.5, 480.0)
    out.add(EventType.SESSION, rows, own_offsets(rows), day, np.round(minutes, 1))

    rows, day = _expand(active * rng.poisson(config.exercises_rate * intensity * level))
    out.add(EventType.EXERCISE_COMPLETED, rows, own_offsets(rows), day)

    # Symptoms improve with the amount of use so far.
    used_before = np.cumsum(active, axis=1) - active
    progress = 1.0 - 0.5 ** (used_before / config.symptom_half_days)
    response = np.minimum(latent["symptom_response"].to_numpy(), 0.9)[:, None]
    phq9 = patients["baseline_phq9"].to_numpy(dtype=float)[:, None] * (1.0 - response * progress)

    mood_p = rng.beta(*config.mood_checkin_beta, size=n)
    rows, day = np.nonzero(active & (rng.random((n, days)) < mood_p[:, None]))
    mood = config.mood_intercept + config.mood_per_phq9_point * phq9[rows, day]
    mood = np.clip(np.rint(mood + rng.normal(0.0, config.mood_noise_sd, len(rows))), 0, 10)
    out.add(EventType.MOOD_CHECKIN, rows, own_offsets(rows), day, mood)

    # PHQ-9 and GAD-7 fall due every few days and are done on the first active day of the window.
    gad7 = patients["baseline_gad7"].to_numpy(dtype=float)[:, None] * (1.0 - response * progress)
    for due in range(config.assessment_every_days, days, config.assessment_every_days):
        window = active[:, due : due + config.assessment_window_days]
        rows = np.nonzero(window.any(axis=1))[0]
        day = due + window[rows].argmax(axis=1)
        offset = own_offsets(rows)
        noise = rng.normal(0.0, config.phq9_noise_sd, len(rows))
        out.add(EventType.PHQ9, rows, offset, day, np.clip(np.rint(phq9[rows, day] + noise), 0, 27))
        noise = rng.normal(0.0, config.phq9_noise_sd * 0.8, len(rows))
        out.add(EventType.GAD7, rows, np.minimum(offset + MINUTE_US // 2, DAY_US - 1_000_000), day, np.clip(np.rint(gad7[rows, day] + noise), 0, 21))

    # Weekly modules: module m opens in week m and is done on an active day, in order.
    module_p = np.minimum(rng.beta(*config.module_beta, size=n) + config.module_human_support_bonus * support, 0.98)
    opened = np.minimum(config.total_modules, 1 + np.floor(np.arange(days) * config.modules_per_week / 7.0))
    tries = rng.random((n, days)) < module_p[:, None]
    done = np.zeros(n, dtype=np.int64)
    completes = np.zeros((n, days), dtype=bool)
    number = np.zeros((n, days), dtype=np.int64)
    for day_k in range(days):
        now = active[:, day_k] & tries[:, day_k] & (done < opened[day_k])
        done += now
        completes[:, day_k] = now
        number[:, day_k] = done
    rows, day = np.nonzero(completes)
    out.add(EventType.MODULE_COMPLETED, rows, own_offsets(rows), day, number[rows, day])

    silent_for = _days_since_last_use(active)
    exit_day = np.where(discontinued, quit_day, days)[:, None]

    if support.any():
        rows, day = np.nonzero(support[:, None] & active & (rng.random((n, days)) < config.message_to_coach_probability))
        out.add(EventType.MESSAGE_TO_COACH, rows, own_offsets(rows), day)
        first = rng.integers(0, 7, n)[:, None]
        spacing = 7 // max(config.coach_messages_per_week, 1)
        on_duty = np.zeros((n, days), dtype=bool)
        for m in range(config.coach_messages_per_week):
            on_duty |= (k % 7) == (first + m * spacing) % 7
        coach = support[:, None] & on_duty & (k < exit_day) & (silent_for <= config.coach_gives_up_days)
        rows, day = np.nonzero(coach)
        out.add(EventType.MESSAGE_FROM_COACH, rows, _day_offset(rng.uniform(9.0, 17.0, len(rows)), enrol_time[rows]), day)

    reminded = patients["reminders"].to_numpy(dtype=bool)
    if reminded.any():
        sent = reminded[:, None] & (k >= 1) & (k < exit_day) & (silent_for <= config.reminders_give_up_days)
        rows, day = np.nonzero(sent)
        hour = np.array([8.0, 12.0, 18.0])[rng.integers(0, 3, n)] + rng.uniform(0.0, 0.5, n)
        offset = _day_offset(hour[rows], enrol_time[rows])
        out.add(EventType.REMINDER_SENT, rows, offset, day)
        open_p = np.where(active[rows, day], config.reminder_open_active, config.reminder_open_inactive)
        opened_now = rng.random(len(rows)) < open_p
        delay = rng.exponential(15.0, opened_now.sum()) * MINUTE_US
        offset = np.minimum(offset[opened_now] + delay.astype(np.int64), DAY_US - 1_000_000)
        out.add(EventType.REMINDER_OPENED, rows[opened_now], offset, day[opened_now])

    rows = np.nonzero(discontinued & (quit_day >= 0) & (quit_day < days))[0]
    out.add(EventType.DISCONTINUED, rows, _day_offset(rng.normal(14.0, 4.0, len(rows)), enrol_time[rows]), quit_day[rows])
    return out
