"""Benchmark the point-in-time features: full set, a core subset against DuckDB SQL, one patient.

Simulates a cohort (default 100,000 patients, at least 10 million events), writes it to
Parquet, then times in one process (medians):
  - reading the events Parquet + compute_features for every patient at one as-of time;
  - a core subset (counts per event type in 7 and 14-day windows, days since the last event),
    from the same Parquet file, with lapse's event index and with DuckDB SQL;
  - one patient with about 500 events (1,000 calls), through compute_features (tables) and
    compute_features_one (numpy arrays), against the batch path's cost per patient (named peer).
Targets (2 cores): >= 2M events/s for the full set, core subset <= 2x DuckDB, one patient <= 1 ms median.

    .venv/bin/python benchmarks/features.py [--patients 100000] [--days 120] [--repeat 3] [--parts full,core,single]
    small, one-patient part only:
    .venv/bin/python benchmarks/features.py --patients 2000 --min-events 0 --parts single
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this file would then shadow the
# `features` package: import the project first without that folder, then add it back for _timing.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from simulation.settings import SimulationConfig  # noqa: E402
from features.event_index import DAY_US, TYPES, EventIndex, encode, micros, type_codes  # noqa: E402
from features.point_in_time import compute_features, compute_features_one  # noqa: E402

sys.path.append(str(_HERE))
from _timing import timed, wall_cpu_ms  # noqa: E402

TARGET_EVENTS_PER_S = 2_000_000
TARGET_DUCKDB_RATIO = 2.0
TARGET_SINGLE_MS = 1.0
CORE_WINDOWS = (7, 14)


def read_events(path: Path, dictionary: bool) -> pd.DataFrame:
    """Events as pandas: text columns as str (canonical) or as categories (Parquet dictionary pages)."""
    if not dictionary:
        return pd.read_parquet(path)
    return pq.read_table(path, read_dictionary=["patient_id", "event_type"]).to_pandas()


def core_subset_lapse(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.DataFrame) -> np.ndarray:
    """Counts per event type in 7/14-day windows and days since the last event, with the event index."""
    codes = encode(as_of["patient_id"], patients["patient_id"])
    T = micros(as_of["as_of"], "as_of")
    ix = EventIndex(encode(events["patient_id"], patients["patient_id"]), micros(events["timestamp"], "timestamp"),
                    type_codes(events["event_type"]), np.zeros(len(events)), len(patients), streams=TYPES)
    qT = ix.query_key(codes, T)
    out = np.empty((len(codes), len(TYPES) * len(CORE_WINDOWS) + 1))
    last = np.full(len(codes), np.iinfo(np.int64).min)
    col = 0
    for name in TYPES:
        hi = ix.upto(name, qT)
        for days in CORE_WINDOWS:
            out[:, col] = hi - ix.upto(name, ix.query_key(codes, T - days * DAY_US))
            col += 1
        has = hi > ix.first(name, codes)
        times = ix.streams[name].time
        if len(times):
            last = np.where(has, np.maximum(last, times.take(hi - 1, mode="clip")), last)
    out[:, col] = np.where(last > np.iinfo(np.int64).min, (T - last) / DAY_US, np.nan)
    return out


def core_subset_sql(events_path: Path) -> str:
    """The core subset in SQL; window starts come precomputed with the as-of rows (no per-event
    time-zone arithmetic), so DuckDB does plain comparisons, a hash join and one aggregation."""
    counts = ",\n".join(
        f"  count(*) FILTER (WHERE e.event_type = '{t}' AND e.timestamp > q.from_{d}d) AS {t}_{d}d"
        for t in TYPES for d in CORE_WINDOWS
    )
    return f"""
SELECT q.patient_id,
{counts},
  (epoch_us(q.as_of) - epoch_us(max(e.timestamp))) / {DAY_US}.0 AS days_since_last_event
FROM as_of q LEFT JOIN read_parquet('{events_path}') e
  ON e.patient_id = q.patient_id AND e.timestamp <= q.as_of
GROUP BY q.patient_id, q.as_of
"""


def bench_full(patients: pd.DataFrame, events_path: Path, as_of: pd.DataFrame, n_events: int, repeat: int) -> None:
    """Read the events Parquet and compute every feature for every patient, both text layouts."""
    print(f"\nfull feature set ({len(patients):,} patients at one as-of time, every event in scope), "
          f"median of {repeat}:")
    rates = {}
    for label, dictionary in (("str columns (canonical)", False), ("dictionary columns", True)):
        read_s, events = timed(lambda: read_events(events_path, dictionary), repeat)
        compute_s, features = timed(lambda: compute_features(patients, events, as_of), repeat)
        assert features.shape[0] == len(patients)
        del events, features
        rates[label] = n_events / (read_s + compute_s)
        print(f"  read as {label:<24} read {read_s:6.2f} s + compute {compute_s:6.2f} s = {read_s + compute_s:6.2f} s "
              f"-> {rates[label] / 1e6:5.2f} M events/s (compute alone {n_events / compute_s / 1e6:5.2f})")
    for label, rate in rates.items():
        verdict = "MET" if rate >= TARGET_EVENTS_PER_S else "MISSED"
        print(f"  target >= {TARGET_EVENTS_PER_S / 1e6:.0f} M events/s, {label}: {rate / 1e6:.2f} M/s {verdict}")


def bench_core(patients: pd.DataFrame, events_path: Path, as_of: pd.DataFrame, n_events: int, repeat: int) -> bool:
    """The core subset with lapse's event index and with DuckDB SQL, both from the Parquet file."""
    import duckdb

    print(f"\ncore subset (counts per type in 7/14-day windows, days since last event), median of {repeat}:")
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    con.register("as_of", as_of.assign(**{f"from_{d}d": as_of["as_of"] - pd.Timedelta(days=d) for d in CORE_WINDOWS}))
    sql = core_subset_sql(events_path)
    duck_s, duck = timed(lambda: con.execute(sql).df(), repeat)
    mine_s, mine = timed(lambda: core_subset_lapse(patients, read_events(events_path, dictionary=True), as_of),
                         repeat)
    duck = duck.set_index("patient_id").loc[as_of["patient_id"]]
    agree = bool(np.allclose(duck.to_numpy(dtype=float), mine, equal_nan=True))
    ratio = mine_s / duck_s
    print(f"  lapse  (read + compute) {mine_s:6.2f} s  ({n_events / mine_s / 1e6:5.2f} M events/s)")
    print(f"  DuckDB (SQL on Parquet) {duck_s:6.2f} s  ({n_events / duck_s / 1e6:5.2f} M events/s, "
          f"{os.cpu_count()} threads)")
    print(f"  ratio lapse / DuckDB {ratio:.2f} (target <= {TARGET_DUCKDB_RATIO:.0f}: "
          f"{'MET' if ratio <= TARGET_DUCKDB_RATIO else 'MISSED'}); results agree: {agree}")
    return agree


def bench_single(patients: pd.DataFrame, events: pd.DataFrame, calls: int, peers: int) -> None:
    """One patient with about 500 events at their last event: through the tables (compute_features) and
    through arrays (compute_features_one), against the batch path's cost per patient for the `peers`
    patients with the event counts nearest 500, computed together in one call."""
    counts = events["patient_id"].value_counts()
    nearest = counts.index[np.argsort(np.abs(counts.to_numpy() - 500), kind="stable")[:peers]]
    one = nearest[0]
    one_events = events[events["patient_id"] == one].reset_index(drop=True)
    one_patient = patients[patients["patient_id"] == one].reset_index(drop=True)
    last = one_events["timestamp"].max()
    one_as_of = pd.DataFrame({"patient_id": one_patient["patient_id"], "as_of": [last]})
    times, types = micros(one_events["timestamp"], "timestamp"), one_events["event_type"].to_numpy()
    values, as_of_us = one_events["value"].to_numpy(dtype=np.float64), int(micros(one_as_of["as_of"], "as_of")[0])

    group = patients[patients["patient_id"].isin(nearest)].reset_index(drop=True)
    group_events = events[events["patient_id"].isin(nearest)].reset_index(drop=True)
    last_event = group_events.groupby("patient_id")["timestamp"].max()
    group_as_of = pd.DataFrame({"patient_id": group["patient_id"], "as_of": group["patient_id"].map(last_event)})
    per_call = max(1, calls // 50)
    batch_s, batch = timed(lambda: compute_features(group, group_events, group_as_of), per_call)
    batch_ms = batch_s * 1e3 / len(group)
    mean_events = len(group_events) / len(group)

    tables = wall_cpu_ms(lambda: compute_features(one_patient, one_events, one_as_of), calls, warmup=20)
    arrays = wall_cpu_ms(lambda: compute_features_one(one_patient, times, types, values, as_of_us), calls,
                         warmup=20)
    same = np.array_equal(compute_features_one(one_patient, times, types, values, as_of_us),
                          batch.loc[batch["patient_id"] == one].iloc[0, 2:].to_numpy(float), equal_nan=True)
    print(f"\none patient ({len(one_events)} events, as-of = their last event), {calls:,} calls each, medians:")
    for label, (median_ms, p99_ms, cpu_ms) in (("compute_features (tables)", tables),
                                               ("compute_features_one (arrays)", arrays)):
        verdict = "MET" if median_ms <= TARGET_SINGLE_MS else "MISSED"
        print(f"  {label:<30} median {median_ms:5.2f} ms, p99 {p99_ms:5.2f} ms, CPU {cpu_ms:5.2f} ms "
              f"(target <= {TARGET_SINGLE_MS:g} ms: {verdict}); "
              f"{median_ms / batch_ms:5.1f}x the batch path per patient")
    print(f"  peer: batch path per patient {batch_ms:5.3f} ms ({len(group)} patients of {mean_events:.0f} events on "
          f"average in one call, median of {per_call}); arrays entry equals the tables row: {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000, help="patients to simulate (default 100,000)")
    parser.add_argument("--days", type=int, default=120, help="days of observation to simulate (default 120)")
    parser.add_argument("--min-events", type=int, default=10_000_000, help="refuse to run below this many events")
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--single-calls", type=int, default=1000, help="calls for the one-patient timing")
    parser.add_argument("--single-peers", type=int, default=200,
                        help="patients (event counts nearest 500) in the batch peer of the one-patient timing")
    parser.add_argument("--parts", default="full,core,single",
                        help="which timings to run, comma-separated from full,core,single (default all)")
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))

    from simulation import simulate

    print(f"simulating {args.patients:,} patients over {args.days} days ...", flush=True)
    sim = simulate(SimulationConfig(n_patients=args.patients, days=args.days, chunk_patients=20_000))
    patients, n_events = sim.patients, len(sim.events)
    print(f"{n_events:,} events")
    if n_events < args.min_events:
        print(f"only {n_events:,} events, below --min-events {args.min_events:,}: raise --days or --patients")
        return 1
    agree = True
    if "single" in parts:
        bench_single(patients, sim.events, args.single_calls, args.single_peers)
    if parts & {"full", "core"}:
        # One as-of time for everyone: the end of the data, so every event is in scope.
        as_of = pd.DataFrame({"patient_id": patients["patient_id"],
                              "as_of": pd.Series(sim.data_end, index=patients.index).dt.as_unit("us")})
        with tempfile.TemporaryDirectory(prefix="lapse-bench-") as tmp:
            events_path = Path(tmp) / "events.parquet"
            sim.events.to_parquet(events_path, index=False, row_group_size=1_000_000)
            del sim
            if "full" in parts:
                bench_full(patients, events_path, as_of, n_events, args.repeat)
            if "core" in parts:
                agree = bench_core(patients, events_path, as_of, n_events, args.repeat)
    print(f"\nmachine load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
