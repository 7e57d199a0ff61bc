"""Training snapshots: as-of times per patient, and the labelled feature table built from them."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from config import FeatureConfig, LabelConfig
from features.event_index import DAY_US, micros
from features.labels import check_label_config, compute_labels, instant_us
from features.point_in_time import compute_features

SNAPSHOT_COLUMNS = ("patient_id", "as_of", "as_of_day")


def _as_of_frame(patient_ids: pd.Series, as_of_us: np.ndarray, day: np.ndarray) -> pd.DataFrame:
    stamps = pd.Series(pd.to_datetime(as_of_us, unit="us", utc=True))
    return pd.DataFrame({"patient_id": patient_ids.array, "as_of": stamps.array, "as_of_day": day.astype(np.int64)})


def snapshot_times(patients: pd.DataFrame, days: Iterable[int]) -> pd.DataFrame:
    """One row per patient and as-of day d: as_of = enrolled_at + d days (patient-major order)."""
    days = np.asarray(sorted(set(int(d) for d in days)), dtype=np.int64)
    if len(days) == 0 or (days < 0).any():
        raise ValueError("as-of days must be a non-empty list of whole days >= 0")
    enrolled = micros(patients["enrolled_at"], "patients.enrolled_at")
    which = np.repeat(np.arange(len(patients)), len(days))
    day = np.tile(days, len(patients))
    return _as_of_frame(patients["patient_id"].iloc[which], enrolled[which] + day * DAY_US, day)


def calendar_snapshot_times(patients: pd.DataFrame, end, every_days: int = 7, start=None) -> pd.DataFrame:
    """As-of times shared by all patients: every `every_days` from `start` (default: the midnight, UTC, before
    the first enrolment) up to `end`, for each patient those strictly after their enrolment; as_of_day is
    whole days since enrolment. One calendar date: start = end."""
    if every_days < 1:
        raise ValueError("calendar snapshots need every_days >= 1")
    enrolled = micros(patients["enrolled_at"], "patients.enrolled_at")
    if len(enrolled) == 0:
        return _as_of_frame(patients["patient_id"], np.zeros(0, np.int64), np.zeros(0, np.int64))
    step = every_days * DAY_US
    start = (int(enrolled.min()) // DAY_US) * DAY_US if start is None else instant_us(start)
    last = (instant_us(end) - start) // step
    first = np.maximum((enrolled - start) // step + 1, 0)  # first calendar point strictly after enrolment
    n = np.maximum(last - first + 1, 0)
    which = np.repeat(np.arange(len(patients)), n)
    k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + first[which]
    as_of = start + k * step
    return _as_of_frame(patients["patient_id"].iloc[which], as_of, (as_of - enrolled[which]) // DAY_US)


def labelled_times(patients: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """The snapshot rows of external labels (patient_id, as_of, dropout): as_of_day is whole days since enrolment."""
    enrolled = micros(patients.set_index("patient_id")["enrolled_at"].reindex(labels["patient_id"].to_numpy()),
                      "patients.enrolled_at")
    as_of = micros(labels["as_of"], "labels.as_of")
    return _as_of_frame(labels["patient_id"], as_of, (as_of - enrolled) // DAY_US)


def training_table(patients: pd.DataFrame, events: pd.DataFrame, data_end, days: Iterable[int] | None = None,
                   feature_config: FeatureConfig = FeatureConfig(), label_config: LabelConfig = LabelConfig(),
                   calendar: bool = False, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """Features and dropout label at each snapshot, only for eligible rows whose horizon is observed.

    Columns: patient_id, as_of, as_of_day, enrolled_at, every feature in catalog order, dropout (0/1).
    `calendar=True` adds snapshots every `feature_config.calendar_every_days` calendar days. With external
    `labels` (patient_id, as_of, dropout; see features.external_labels) the snapshots are the labelled times
    and the outcomes are the given ones: lapse's own label rule is not applied.
    """
    if labels is not None:
        snaps = labelled_times(patients, labels)
        dropout = labels["dropout"].to_numpy(dtype=np.int64)
    else:
        check_label_config(label_config)
        days = feature_config.as_of_days if days is None else days
        snaps = snapshot_times(patients, days) if len(days) else None
        if calendar or snaps is None:
            extra = calendar_snapshot_times(patients, feature_config.calendar_end or data_end,
                                            feature_config.calendar_every_days, feature_config.calendar_start)
            snaps = (pd.concat([s for s in (snaps, extra) if s is not None], ignore_index=True)
                     .drop_duplicates(["patient_id", "as_of"])
                     .sort_values(["patient_id", "as_of"], kind="stable", ignore_index=True))
        computed = compute_labels(events, snaps, data_end, label_config, feature_config.events)
        keep = (computed["eligible"] & ~computed["censored"]).to_numpy()
        snaps = snaps.loc[keep].reset_index(drop=True)
        dropout = computed["dropout"].to_numpy()[keep].astype(np.int64)
    features = compute_features(patients, events, snaps[["patient_id", "as_of"]], feature_config)
    enrolled = patients.set_index("patient_id")["enrolled_at"]
    table = pd.concat([snaps, features.drop(columns=["patient_id", "as_of"])], axis=1)
    table.insert(3, "enrolled_at", enrolled.reindex(snaps["patient_id"]).array)
    table["dropout"] = dropout
    return table

