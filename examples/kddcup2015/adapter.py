"""Adapter: the KDD Cup 2015 (XuetangX MOOC) daily activity counts as a lapse data folder.

    python examples/kddcup2015/adapter.py --source /work/shared/data/kddcup2015 --out /tmp/kddcup2015

Reads `daily_2013.csv.gz` (one row per enrolment and day of a course's first 30 days, a count per event type)
and `truth_2013.csv` (the competition's dropout label), and writes, in `--out`:

- `patients.parquet`: one row per enrolment; `enrolled_at` is the course's first day (00:00 UTC: every
  enrolment of a course shares it, the platform gives no enrolment time) and `program` the course;
- `events.parquet`: one event per enrolment, type and day with a non-zero count, at noon of that day (UTC:
  the data's days are the platform's calendar days, without a time of day), carrying the count as its value;
  the types are the column names without `event_`, declared in this folder's `lapse.toml`;
- `labels.parquet`: the external labels: `as_of` = the course start + 30 days (the end of the window),
  `dropout` = the competition's label (no activity in the 10 days after the window);
- `meta.json`: `data_end`, the end of the last course's window;
- `lapse.toml`: the declaration beside this script.

The data is not copied into the project: the folder is written wherever `--out` says.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_SOURCE = Path("/work/shared/data/kddcup2015")
DAILY_FILE, TRUTH_FILE = "daily_2013.csv.gz", "truth_2013.csv"
WINDOW_DAYS = 30
PREFIX = "event_"
DECLARATION = Path(__file__).resolve().with_name("lapse.toml")


def read_daily(source: Path) -> pd.DataFrame:
    """The daily count table with `time` as a UTC day."""
    daily = pd.read_csv(source / DAILY_FILE, dtype={"course": str, "enrollment_id": str})
    daily["time"] = pd.to_datetime(daily["time"], format="ISO8601", utc=True)
    return daily


def count_columns(daily: pd.DataFrame) -> list[str]:
    return [c for c in daily.columns if c.startswith(PREFIX)]


def adapt(source: Path, out: Path) -> dict[str, int]:
    """Write the lapse data folder; returns its row counts."""
    daily = read_daily(source)
    counts = count_columns(daily)
    start = daily.groupby("course")["time"].transform("min")
    patients = (daily.assign(enrolled_at=start)[["enrollment_id", "enrolled_at", "course"]]
                .drop_duplicates("enrollment_id")
                .rename(columns={"enrollment_id": "patient_id", "course": "program"})
                .sort_values(["enrolled_at", "patient_id"], ignore_index=True))
    long = daily.melt(id_vars=["enrollment_id", "time"], value_vars=counts, var_name="event_type", value_name="value")
    long = long[long["value"] > 0]
    events = pd.DataFrame({
        "patient_id": long["enrollment_id"].to_numpy(),
        "timestamp": (long["time"] + pd.Timedelta(hours=12)).to_numpy(),
        "event_type": long["event_type"].str.removeprefix(PREFIX).to_numpy(),
        "value": long["value"].to_numpy(dtype=np.float64),
    }).sort_values(["patient_id", "timestamp", "event_type"], ignore_index=True)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    truth = pd.read_csv(source / TRUTH_FILE, dtype={"enrollment_id": str})
    labelled = patients.merge(truth, left_on="patient_id", right_on="enrollment_id", how="inner")
    labels = pd.DataFrame({"patient_id": labelled["patient_id"],
                           "as_of": labelled["enrolled_at"] + pd.Timedelta(days=WINDOW_DAYS),
                           "dropout": labelled["label"].astype(np.int64)})
    out.mkdir(parents=True, exist_ok=True)
    patients.to_parquet(out / "patients.parquet", index=False)
    events.to_parquet(out / "events.parquet", index=False)
    labels.to_parquet(out / "labels.parquet", index=False)
    data_end = labels["as_of"].max()
    (out / "meta.json").write_text(json.dumps({"data_end": data_end.isoformat()}))
    shutil.copyfile(DECLARATION, out / "lapse.toml")
    return {"patients": len(patients), "events": len(events), "labels": len(labels)}


def daily_matrix(source: Path) -> tuple[pd.Index, np.ndarray]:
    """The 30 x 7 daily count matrix per enrolment (day-major, flattened): enrolment ids and their rows."""
    daily = read_daily(source)
    counts = count_columns(daily)
    day = (daily["time"] - daily.groupby("course")["time"].transform("min")).dt.days
    daily = daily[day < WINDOW_DAYS].assign(day=day)
    wide = daily.pivot_table(index="enrollment_id", columns="day", values=counts, aggfunc="sum", fill_value=0)
    return wide.index, wide.to_numpy(dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of the KDD Cup 2015 files")
    parser.add_argument("--out", type=Path, required=True, help="the lapse data folder to write")
    args = parser.parse_args(argv)
    rows = adapt(args.source, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{n:,} {what}" for what, n in rows.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
