"""Dropout labels: who is still engaged at an as-of time, whose horizon is censored, and who drops out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import EventsConfig, LabelConfig
from features.contract import EventType
from features.event_index import DAY_US, OWN, encode, indexed_chunks, micros, type_codes
from features.vocabulary import vocabulary

DEFINITIONS = ("inactivity", "discontinuation", "either")
_DISCONTINUED = EventType.DISCONTINUED.value


def as_utc_instant(value) -> pd.Timestamp:
    """A timestamp as tz-aware UTC (naive values are read as UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def instant_us(value) -> int:
    """A timestamp as int64 microseconds since the epoch (UTC; naive values are read as UTC)."""
    return int(as_utc_instant(value).as_unit("us").asm8.astype(np.int64))


def check_label_config(config: LabelConfig) -> None:
    """Raise ValueError naming the first label setting that cannot work."""
    if config.definition not in DEFINITIONS:
        raise ValueError(f"label definition must be one of {', '.join(DEFINITIONS)}, not {config.definition!r}")
    if config.horizon_days < 1:
        raise ValueError("label horizon_days must be at least 1")
    if config.engaged_within_days < 1:
        raise ValueError("label engaged_within_days must be at least 1")


def compute_labels(events: pd.DataFrame, as_of: pd.DataFrame, data_end,
                   config: LabelConfig = LabelConfig(), events_config: EventsConfig = EventsConfig()) -> pd.DataFrame:
    """Eligibility, censoring and the dropout label (1/0, NaN if not labelled) per (patient_id, as_of) row.

    Own engagement is lapse's own-engagement types and the program's declared ones (`events_config`).
    """
    check_label_config(config)
    for column in ("patient_id", "as_of"):
        if column not in as_of:
            raise ValueError(f"as_of is missing column: {column}")
    for column in ("patient_id", "timestamp", "event_type"):
        if column not in events:
            raise ValueError(f"events is missing column: {column}")
    universe = pd.Index(pd.unique(as_of["patient_id"]))
    codes = encode(as_of["patient_id"], universe)
    T = micros(as_of["as_of"], "as_of.as_of")
    end = instant_us(data_end)
    horizon = config.horizon_days * DAY_US
    ev_codes = encode(events["patient_id"], universe)
    ev_times = micros(events["timestamp"], "events.timestamp")
    vocab = vocabulary(events_config)
    ev_types = type_codes(events["event_type"], vocab.names)
    ev_values = np.zeros(len(events))

    eligible = np.zeros(len(as_of), dtype=bool)
    inactive = np.zeros(len(as_of), dtype=bool)
    discontinued = np.zeros(len(as_of), dtype=bool)
    for lo, _, rows, ix in indexed_chunks(codes, ev_codes, ev_times, ev_types, ev_values, len(universe),
                                          streams=(OWN, _DISCONTINUED), names=vocab.names, own_codes=vocab.own):
        c, t = codes[rows] - lo, T[rows]
        own_now = ix.upto(OWN, ix.query_key(c, t))
        own_recent = own_now - ix.upto(OWN, ix.query_key(c, t - config.engaged_within_days * DAY_US))
        gone_now = ix.upto(_DISCONTINUED, ix.query_key(c, t))
        gone_before = gone_now - ix.first(_DISCONTINUED, c)
        eligible[rows] = (own_recent > 0) & (gone_before == 0)
        inactive[rows] = ix.upto(OWN, ix.query_key(c, t + horizon)) == own_now
        discontinued[rows] = ix.upto(_DISCONTINUED, ix.query_key(c, t + horizon)) > gone_now

    censored = T + horizon > end
    dropout = {"inactivity": inactive, "discontinuation": discontinued,
               "either": inactive | discontinued}[config.definition]
    out = pd.DataFrame({"patient_id": as_of["patient_id"].array, "as_of": as_of["as_of"].array,
                        "eligible": eligible, "censored": censored,
                        "dropout": np.where(eligible & ~censored, dropout.astype(np.float64), np.nan)},
                       index=as_of.index)
    return out
