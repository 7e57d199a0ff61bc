"""Turning simulated daily activity into contract event rows with timestamps and values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulation.settings import SimulationConfig
from features.contract import EventType
from simulation.cohort import DAY_US, HOUR_US, enrolled_us
from simulation.engagement import engagement_level

EVENT_CODES: dict[EventType, int] = {t: i for i, t in enumerate(EventType)}
MINUTE_US = 60 * 1_000_000
LAST_OFFSET_US = DAY_US - 1_000_000


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
    return np.clip(np.mod(clock_us - enrol_time_us, DAY_US), 1_000_000, LAST_OFFSET_US)


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


@dataclass
class _Chunk:
    """What every event family of one chunk of patients draws from."""

    patients: pd.DataFrame
    latent: pd.DataFrame
    active: np.ndarray  # patients x days, any own engagement
    config: SimulationConfig
    rng: np.random.Generator
    enrol_time: np.ndarray  # microseconds after midnight UTC of each enrolment
    preferred_hour: np.ndarray  # each patient's favourite time of day for using the program
    level: np.ndarray  # latent engagement level, patients x days

    @property
    def days(self) -> np.ndarray:
        return np.arange(self.active.shape[1])[None, :]

    def own_offsets(self, rows: np.ndarray) -> np.ndarray:
        """Offsets into the day for the patient's own use, around their favourite hour."""
        hour = self.preferred_hour[rows] + self.rng.normal(0.0, 1.5, len(rows))
        return _day_offset(hour, self.enrol_time[rows])


def _use(c: _Chunk, out: EventArrays) -> None:
    """Sessions (at least one per active day, with minutes) and exercises, more when engaged."""
    config, rng = c.config, c.rng
    intensity = c.latent["intensity"].to_numpy()[:, None]
    extra = config.extra_sessions_rate * intensity * c.level**config.extra_sessions_power
    rows, day = _expand(c.active * (1 + rng.poisson(extra)))
    # Engaged patients also stay longer: the median scales with 0.5 + engagement level.
    median = config.session_minutes_median * rng.lognormal(0.0, 0.3, len(c.active))[rows] * (0.5 + c.level[rows, day])
    minutes = np.clip(median * rng.lognormal(0.0, config.session_minutes_sigma, len(rows)), 0.5, 480.0)
    out.add(EventType.SESSION, rows, c.own_offsets(rows), day, np.round(minutes, 1))

    rows, day = _expand(c.active * rng.poisson(config.exercises_rate * intensity * c.level))
    out.add(EventType.EXERCISE_COMPLETED, rows, c.own_offsets(rows), day)


def _symptoms(c: _Chunk) -> tuple[np.ndarray, np.ndarray]:
    """Expected PHQ-9 and GAD-7 per patient and day: they improve with the amount of use so far."""
    used_before = np.cumsum(c.active, axis=1) - c.active
    progress = 1.0 - 0.5 ** (used_before / c.config.symptom_half_days)
    relief = 1.0 - np.minimum(c.latent["symptom_response"].to_numpy(), 0.9)[:, None] * progress
    phq9 = c.patients["baseline_phq9"].to_numpy(dtype=float)[:, None] * relief
    gad7 = c.patients["baseline_gad7"].to_numpy(dtype=float)[:, None] * relief
    return phq9, gad7


def _check_ins(c: _Chunk, out: EventArrays, phq9: np.ndarray, gad7: np.ndarray) -> None:
    """Mood check-ins on some active days, and PHQ-9 / GAD-7 when they fall due."""
    config, rng = c.config, c.rng
    mood_p = rng.beta(*config.mood_checkin_beta, size=len(c.active))
    rows, day = np.nonzero(c.active & (rng.random(c.active.shape) < mood_p[:, None]))
    mood = config.mood_intercept + config.mood_per_phq9_point * phq9[rows, day]
    mood = np.clip(np.rint(mood + rng.normal(0.0, config.mood_noise_sd, len(rows))), 0, 10)
    out.add(EventType.MOOD_CHECKIN, rows, c.own_offsets(rows), day, mood)

    # Questionnaires fall due every few days and are done on the first active day of the window.
    for due in range(config.assessment_every_days, c.active.shape[1], config.assessment_every_days):
        window = c.active[:, due : due + config.assessment_window_days]
        rows = np.nonzero(window.any(axis=1))[0]
        day = due + window[rows].argmax(axis=1)
        offset = c.own_offsets(rows)
        score = np.clip(np.rint(phq9[rows, day] + rng.normal(0.0, config.phq9_noise_sd, len(rows))), 0, 27)
        out.add(EventType.PHQ9, rows, offset, day, score)
        score = np.clip(np.rint(gad7[rows, day] + rng.normal(0.0, 0.8 * config.phq9_noise_sd, len(rows))), 0, 21)
        out.add(EventType.GAD7, rows, np.minimum(offset + MINUTE_US // 2, LAST_OFFSET_US), day, score)


def _modules(c: _Chunk, out: EventArrays) -> None:
    """Weekly modules: module m opens in week m and is completed on an active day, in order."""
    config, n_days = c.config, c.active.shape[1]
    support = c.patients["human_support"].to_numpy(dtype=bool)
    module_p = c.rng.beta(*config.module_beta, size=len(c.active)) + config.module_human_support_bonus * support
    opened = np.minimum(config.total_modules, 1 + np.floor(np.arange(n_days) * config.modules_per_week / 7.0))
    tries = c.active & (c.rng.random(c.active.shape) < np.minimum(module_p, 0.98)[:, None])
    done = np.zeros(len(c.active), dtype=np.int64)
    completes = np.zeros(c.active.shape, dtype=bool)
    number = np.zeros(c.active.shape, dtype=np.int64)
    for day in range(n_days):
        now = tries[:, day] & (done < opened[day])
        done += now
        completes[:, day] = now
        number[:, day] = done
    rows, day = np.nonzero(completes)
    out.add(EventType.MODULE_COMPLETED, rows, c.own_offsets(rows), day, number[rows, day])


def _outreach(c: _Chunk, out: EventArrays, exit_day: np.ndarray) -> None:
    """Coach messages (and replies) with human support, reminders where enabled; both stop at
    an explicit exit or after a long silence."""
    config, rng, k = c.config, c.rng, c.days
    silent_for = _days_since_last_use(c.active)
    support = c.patients["human_support"].to_numpy(dtype=bool)
    replies = support[:, None] & c.active & (rng.random(c.active.shape) < config.message_to_coach_probability)
    rows, day = np.nonzero(replies)
    out.add(EventType.MESSAGE_TO_COACH, rows, c.own_offsets(rows), day)
    first = rng.integers(0, 7, len(c.active))[:, None]
    spacing = 7 // max(config.coach_messages_per_week, 1)
    on_duty = np.zeros(c.active.shape, dtype=bool)
    for m in range(config.coach_messages_per_week):
        on_duty |= (k % 7) == (first + m * spacing) % 7
    coach = support[:, None] & on_duty & (k < exit_day) & (silent_for <= config.coach_gives_up_days)
    rows, day = np.nonzero(coach)
    out.add(EventType.MESSAGE_FROM_COACH, rows, _day_offset(rng.uniform(9.0, 17.0, len(rows)), c.enrol_time[rows]), day)

    reminded = c.patients["reminders"].to_numpy(dtype=bool)
    sent = reminded[:, None] & (k >= 1) & (k < exit_day) & (silent_for <= config.reminders_give_up_days)
    rows, day = np.nonzero(sent)
    hour = np.array([8.0, 12.0, 18.0])[rng.integers(0, 3, len(c.active))] + rng.uniform(0.0, 0.5, len(c.active))
    offset = _day_offset(hour[rows], c.enrol_time[rows])
    out.add(EventType.REMINDER_SENT, rows, offset, day)
    open_p = np.where(c.active[rows, day], config.reminder_open_active, config.reminder_open_inactive)
    opened = rng.random(len(rows)) < open_p
    delay = (rng.exponential(15.0, opened.sum()) * MINUTE_US).astype(np.int64)
    out.add(EventType.REMINDER_OPENED, rows[opened], np.minimum(offset[opened] + delay, LAST_OFFSET_US), day[opened])


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
    n, n_days = active.shape
    preferred = np.array([8.0, 12.5, 20.5])[rng.choice(3, size=n, p=[0.3, 0.2, 0.5])] + rng.normal(0.0, 1.0, n)
    chunk = _Chunk(patients, latent, active, config, rng, enrolled_us(patients) % DAY_US, preferred,
                   engagement_level(latent, np.arange(n_days)[None, :]))
    out = EventArrays()
    _use(chunk, out)
    _check_ins(chunk, out, *_symptoms(chunk))
    _modules(chunk, out)
    _outreach(chunk, out, np.where(discontinued, quit_day, n_days)[:, None])
    rows = np.nonzero(discontinued & (quit_day >= 0) & (quit_day < n_days))[0]
    offset = _day_offset(rng.normal(14.0, 4.0, len(rows)), chunk.enrol_time[rows])
    out.add(EventType.DISCONTINUED, rows, offset, quit_day[rows])
    return out
