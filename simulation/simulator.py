"""Simulating a whole cohort: patients, events and latent truth, chunk by chunk."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import EventType
from simulation.settings import SimulationConfig
from simulation.cohort import DAY_US, data_end, draw_patients, enrolled_us, study_start_us
from simulation.engagement import draw_activity, draw_latent
from simulation.events import draw_events


class SimulatedCohort(NamedTuple):
    """A simulated cohort: contract tables, the latent truth per patient and the end of observation."""

    patients: pd.DataFrame
    events: pd.DataFrame
    truth: pd.DataFrame
    data_end: pd.Timestamp


def check_config(config: SimulationConfig) -> None:
    """Raise ValueError naming the first simulation setting that cannot work."""
    if config.n_patients < 1:
        raise ValueError("simulation: n_patients must be at least 1")
    if config.days < 1:
        raise ValueError("simulation: days must be at least 1")
    if config.chunk_patients < 1:
        raise ValueError("simulation: chunk_patients must be at least 1")
    if not 0.0 < config.enrolment_share <= 1.0:
        raise ValueError("simulation: enrolment_share must be in (0, 1]")
    if not config.trajectories or any(c.share < 0 for c in config.trajectories):
        raise ValueError("simulation: trajectories need non-negative shares")
    if config.n_sites < 1:
        raise ValueError("simulation: n_sites must be at least 1")


def _str_column(codes: np.ndarray, names: np.ndarray) -> pd.Series:
    """A pandas str column holding names[codes], built in Arrow without Python strings per row."""
    taken = pc.take(pa.array(names.tolist(), type=pa.string()), pa.array(codes))
    return pd.Series(pd.array(taken, dtype="str"))


def _take_part(parts: list[tuple[np.ndarray, ...]], i: int) -> np.ndarray:
    """Concatenate field i of every chunk and release the chunk copies (keeps peak memory low)."""
    joined = np.concatenate([p[i] for p in parts])
    for j, p in enumerate(parts):
        parts[j] = p[:i] + (None,) + p[i + 1 :]
    return joined


def _bit_strings(active: np.ndarray) -> pd.Series:
    """Each row of a bool matrix as a string of '0' and '1', one character per day."""
    chars = (active.astype(np.uint8) + ord("0")).view(f"S{active.shape[1]}").ravel()
    return pd.Series(pd.array(chars.astype(f"U{active.shape[1]}"), dtype="str"))


def simulate(config: SimulationConfig = SimulationConfig()) -> SimulatedCohort:
    """Simulate a cohort as the config describes; identical configs give identical tables."""
    check_config(config)
    n_chunks = math.ceil(config.n_patients / config.chunk_patients)
    site_seed, *chunk_seeds = np.random.SeedSequence(config.seed).spawn(n_chunks + 1)
    site_log_hr = np.random.default_rng(site_seed).normal(0.0, config.site_log_hr_sd, config.n_sites)
    start_us = study_start_us(config)
    end_us = start_us + config.days * DAY_US

    patient_parts, truth_parts, event_parts = [], [], []
    for chunk, seed in enumerate(chunk_seeds):
        rng = np.random.default_rng(seed)
        first = chunk * config.chunk_patients
        n = min(config.chunk_patients, config.n_patients - first)
        patients = draw_patients(config, rng, n, first)
        latent = draw_latent(patients, config, rng, site_log_hr)
        active, quit_day, discontinued = draw_activity(latent, config.days, rng)
        rows, since_enrol, code, value = draw_events(
            patients, latent, active, quit_day, discontinued, config, rng
        ).concat()

        enrol_us = enrolled_us(patients)
        timestamp = enrol_us[rows] + since_enrol
        keep = timestamp < end_us
        rows, timestamp, code, value = rows[keep], timestamp[keep], code[keep], value[keep]
        order = np.lexsort((timestamp, rows))
        event_parts.append(
            ((rows[order] + first).astype(np.int32), timestamp[order], code[order], value[order])
        )
        del rows, since_enrol, code, value, timestamp, order

        enrol_day = (enrol_us - start_us) // DAY_US
        truth = latent.assign(
            quit_day=np.where(quit_day >= 0, quit_day, np.nan),
            discontinued=discontinued,
            enrol_day=enrol_day,
            observed_days=-(-(end_us - enrol_us) // DAY_US),
            simulated_days=config.days,
            active_days=_bit_strings(active),
        )
        patient_parts.append(patients)
        truth_parts.append(truth)

    patients = pd.concat(patient_parts, ignore_index=True)
    truth = pd.concat(truth_parts, ignore_index=True)
    events = pd.DataFrame(
        {
            "patient_id": _str_column(_take_part(event_parts, 0), patients["patient_id"].to_numpy()),
            "timestamp": pd.to_datetime(_take_part(event_parts, 1), unit="us", utc=True).as_unit("us"),
            "event_type": _str_column(_take_part(event_parts, 2), np.array([str(t) for t in EventType])),
            "value": _take_part(event_parts, 3),
        }
    )
    return SimulatedCohort(patients, events, truth, data_end(config))
