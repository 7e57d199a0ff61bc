"""Request bodies for benchmarks/serving.py: features rows and raw profile + events from a simulated cohort,
and the answers lapse must give, computed here with the scoring primitives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.special import expit

from simulation.settings import SimulationConfig

RAW_EVENTS = 150
# Distinct 1,000-patient batches, each of other patients and snapshot days (more than the 30 timed by default), for
# each batch phase its own: a server sees new values in every timed batch, as it would from a platform, not one
# batch its caches have learnt.
BATCHES = 32
BATCH_SIZE = 1000


def _json_row(row: np.ndarray) -> list[float | None]:
    return [None if np.isnan(x) else float(x) for x in row]


def lapse_body(names: list[str], rows: np.ndarray, start: int) -> bytes:
    """A /score request for these rows, each patient's features by name."""
    patients = [{"patient_id": f"bench-{start + i}", "as_of": "2025-10-01T00:00:00Z",
                 "features": dict(zip(names, _json_row(r)))} for i, r in enumerate(rows)]
    return json.dumps({"patients": patients}).encode()


def lapse_values_body(names: list[str], rows: np.ndarray, start: int) -> bytes:
    """A /score request for these rows, the names sent once (`feature_names`) and each patient's `values` in
    their order: the shape of MLflow's `dataframe_split`."""
    patients = [{"patient_id": f"bench-{start + i}", "as_of": "2025-10-01T00:00:00Z", "values": _json_row(r)}
                for i, r in enumerate(rows)]
    return json.dumps({"feature_names": names, "patients": patients}).encode()


def mlflow_body(names: list[str], rows: np.ndarray) -> bytes:
    """An /invocations request for these rows."""
    return json.dumps({"dataframe_split": {"columns": names, "data": [_json_row(r) for r in rows]}}).encode()


class Workload:
    """Request bodies for both servers and the answers lapse must give (from the primitives, in-process)."""

    def __init__(self, names: list[str], scorer, feature_config) -> None:
        from features.point_in_time import compute_features
        from features.snapshots import snapshot_times
        from models.scoring import model_matrix
        from simulation import simulate

        cohort = simulate(SimulationConfig(n_patients=1200, days=60, seed=99))
        as_of = snapshot_times(cohort.patients, [7, 14])
        rows = model_matrix(compute_features(cohort.patients, cohort.events, as_of, config=feature_config), names)
        self.names, self.scorer = names, scorer
        self.singles_lapse = [lapse_body(names, rows[i:i + 1], i) for i in range(200)]
        self.singles_mlflow = [mlflow_body(names, rows[i:i + 1]) for i in range(200)]
        # Every patient at every day of their first 60 (many of them inactive by then), shuffled into batches.
        snapshots = snapshot_times(cohort.patients, list(range(1, 61)))
        pool = model_matrix(compute_features(cohort.patients, cohort.events, snapshots, config=feature_config), names)
        order = np.random.default_rng(7).permutation(len(pool))[:(2 * BATCHES + 1) * BATCH_SIZE]
        chunks = [pool[chunk] for chunk in np.split(order, len(order) // BATCH_SIZE)]
        # One batch to check the answers before timing; then the names-once batches (lapse's and MLflow's: the
        # same rows, to different servers) and the features-by-name batches, none of them sent before it is timed.
        self.check_rows = chunks[0]
        self.check_lapse = lapse_values_body(names, self.check_rows, 0)
        self.check_named = lapse_body(names, self.check_rows, 0)
        self.batches_rows = chunks[1:BATCHES + 1]
        self.named_rows = chunks[BATCHES + 1:]
        self.batch_lapse = [lapse_values_body(names, X, (b + 1) * BATCH_SIZE) for b, X in enumerate(self.batches_rows)]
        self.batch_mlflow = [mlflow_body(names, X) for X in self.batches_rows]
        self.batch_lapse_named = [lapse_body(names, X, (BATCHES + b + 1) * BATCH_SIZE)
                                  for b, X in enumerate(self.named_rows)]
        self.raw, raw_patients, raw_events, raw_as_of = raw_bodies(cohort, 200)
        self.raw_rows = model_matrix(compute_features(raw_patients, raw_events, raw_as_of, config=feature_config),
                                     names)

    def expected(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Risk per row and every feature's contribution, as they were before lapse's SHAP tables: from XGBoost's own
        `pred_contribs` (through the Python DMatrix), on the scorer's calibrated scale."""
        raw = self.scorer.booster.predict(xgb.DMatrix(X, missing=np.nan), pred_contribs=True,
                                          validate_features=False).astype(np.float64)
        slope, intercept = self.scorer.calibration.slope, self.scorer.calibration.intercept
        contributions, base = raw[:, :-1] * slope, raw[:, -1] * slope + intercept
        return expit(contributions.sum(axis=1) + base), contributions


def raw_bodies(cohort, n: int) -> tuple[list[bytes], pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`n` one-patient /score bodies of a profile and RAW_EVENTS events, and the same data as tables."""
    counts = cohort.events.groupby("patient_id").size()
    chosen = list(counts[counts >= RAW_EVENTS].index[:n])
    events = cohort.events[cohort.events["patient_id"].isin(chosen)].sort_values(["patient_id", "timestamp"])
    events = events.groupby("patient_id").head(RAW_EVENTS).reset_index(drop=True)
    last = events.groupby("patient_id")["timestamp"].max()
    patients = cohort.patients.set_index("patient_id").loc[chosen].reset_index()
    as_of = pd.DataFrame({"patient_id": chosen, "as_of": (last.loc[chosen] + pd.Timedelta(hours=6)).to_numpy()})
    bodies = []
    for pid, group in events.groupby("patient_id", sort=False):
        profile = {k: (v.isoformat() if isinstance(v, pd.Timestamp) else v.item() if hasattr(v, "item") else v)
                   for k, v in patients.set_index("patient_id").loc[pid].items() if not pd.isna(v)}
        items = [{"timestamp": t.isoformat(), "event_type": e, "value": None if np.isnan(v) else float(v)}
                 for t, e, v in zip(group["timestamp"], group["event_type"], group["value"])]
        when = as_of.set_index("patient_id").loc[pid, "as_of"].isoformat()
        bodies.append(json.dumps({"patients": [{"patient_id": pid, "as_of": when, "profile": profile,
                                                "events": items}]}).encode())
    order = {pid: k for k, pid in enumerate(events["patient_id"].unique())}
    patients = patients.sort_values("patient_id", key=lambda s: s.map(order)).reset_index(drop=True)
    as_of = as_of.sort_values("patient_id", key=lambda s: s.map(order)).reset_index(drop=True)
    return bodies, patients, events, as_of
