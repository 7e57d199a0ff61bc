"""Benchmark contract validation: load_cohort on a large Parquet/CSV cohort, check_tables on a request.

Prints median seconds (and rows per second) so changes to features/validate.py and
features/parsing.py can be compared. Usage: python benchmarks/validate_cohort.py [--events N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from features.contract import EventType
from features.io import read_raw_table
from features.validate import check_tables, load_cohort

from _timing import timed

NOW = pd.Timestamp("2026-01-01", tz="UTC")


def synthetic(n_patients: int, n_events: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """A valid cohort as Arrow tables (ids, UTC timestamps, value per event type rule)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2025-01-01T00:00:00", "us")
    ids = pa.array([f"p{i:07d}" for i in range(n_patients)])
    enrolled = start + rng.integers(0, 60 * 86_400, n_patients).astype("timedelta64[s]")
    patients = pa.table({
        "patient_id": ids,
        "enrolled_at": pa.array(enrolled, pa.timestamp("us", tz="UTC")),
        "age": rng.integers(18, 80, n_patients),
        "sex": pa.array(rng.choice(["female", "male"], n_patients)),
        "human_support": rng.random(n_patients) < 0.5,
    })
    who = rng.integers(0, n_patients, n_events)
    at = enrolled[who] + rng.integers(1, 120 * 86_400, n_events).astype("timedelta64[s]")
    types = np.array([EventType.SESSION, EventType.MOOD_CHECKIN, EventType.REMINDER_SENT], dtype=object)
    kind = rng.integers(0, 3, n_events)
    mood = np.where(kind == 1, rng.integers(0, 11, n_events), np.nan)
    value = np.where(kind == 0, rng.uniform(1, 60, n_events), mood)
    events = pa.table({
        "patient_id": ids.take(pa.array(who)),
        "timestamp": pa.array(at, pa.timestamp("us", tz="UTC")),
        "event_type": pa.array([str(t) for t in types]).take(pa.array(kind)),
        "value": pa.array(value, from_pandas=True),
    })
    return patients, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the large cohort")
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--csv-events", type=int, default=500_000, help="events in the CSV cohort")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        patients, events = synthetic(args.patients, args.events)
        (root / "pq").mkdir()
        pq.write_table(patients, root / "pq" / "patients.parquet")
        pq.write_table(events, root / "pq" / "events.parquet")
        read = timed(lambda: (read_raw_table(root / "pq" / "patients.parquet"),
                                       read_raw_table(root / "pq" / "events.parquet")), args.repeat)[0]
        full = timed(lambda: load_cohort(root / "pq", now=NOW), args.repeat)[0]
        print(f"parquet {args.events:,} events: read {read:.2f} s, load_cohort {full:.2f} s "
              f"(validation {full - read:.2f} s, {args.events / full / 1e6:.1f} M events/s, "
              f"load/read ratio {full / read:.1f})")

        csv_patients, csv_events = synthetic(args.patients, args.csv_events, seed=1)
        (root / "csv").mkdir()
        pacsv.write_csv(csv_patients, root / "csv" / "patients.csv")
        pacsv.write_csv(csv_events, root / "csv" / "events.csv")
        read = timed(lambda: (read_raw_table(root / "csv" / "patients.csv"),
                                       read_raw_table(root / "csv" / "events.csv")), args.repeat)[0]
        full = timed(lambda: load_cohort(root / "csv", now=NOW), args.repeat)[0]
        print(f"csv {args.csv_events:,} events: read {read:.2f} s, load_cohort {full:.2f} s "
              f"(validation {full - read:.2f} s, {args.csv_events / full / 1e6:.2f} M events/s)")

    small_p, small_e = synthetic(50, 500, seed=2)
    p_frame, e_frame = small_p.to_pandas(), small_e.to_pandas()
    e_text = e_frame.assign(timestamp=e_frame["timestamp"].astype(str))
    for label, frame in (("typed", e_frame), ("text timestamps", e_text)):
        both = timed(lambda f=frame: check_tables(p_frame, f, now=NOW), 200)[0]
        alone = timed(lambda f=frame: check_tables(None, f, now=NOW), 200)[0]
        print(f"check_tables 500 events ({label}): {both * 1e3:.2f} ms with 50 patients, "
              f"{alone * 1e3:.2f} ms events only")


if __name__ == "__main__":
    main()
