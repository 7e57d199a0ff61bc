"""`lapse monitor`: how recent inputs compare with the training reference, and how the scores turned out.

- Drift (`--data DIR`): like is compared with like. Training rows are snapshots taken a few days after
  enrolment (the model's as-of days, e.g. 3, 7, 14, 21, 28), so the recent inputs are the snapshots at
  those same days that fall in the last `window_days` before `as_of` (eligible under the model's label
  definition), with features from the same `compute_features`. Each feature is compared, day by day,
  with the training reference the run logged for that day (feature_distributions.json) by PSI
  (monitoring/psi.py: 0.1 watch, 0.25 alarm); a feature's PSI is the mean over days weighted by the
  recent snapshots of each day.
- Realized performance (`--decisions DB`, with `--data`): the logged decisions whose horizon has
  passed by the data's end get their real label from the events (the model's label definition);
  AUC, mean predicted vs observed dropout, and the expected calibration error over 10 risk bins.
  The outcomes table (what outreach led to) is summarised by kind. The decision log holds no feature
  values (by design), so feature drift always needs the data folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from mlflow import MlflowClient
from sklearn.metrics import roc_auc_score

from config import LapseError
from features.io import read_data_end
from features.labels import as_utc_instant, compute_labels
from features.point_in_time import compute_features
from features.snapshots import snapshot_times
from features.validate import load_cohort
from models.loaded import LoadedModel
from outreach.outcomes import read_outcomes

from .psi import WINDOW_DAYS, ReferenceHistogram, level, psi, recent_shares

REFERENCE_FILE = "feature_distributions.json"
CALIBRATION_BINS = 10


class MonitorError(LapseError):
    """The monitor cannot run: a missing reference, an empty selection or an unreadable decision log."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's PSI against its training reference."""

    feature: str
    psi: float
    level: str
    reference_missing: float
    recent_missing: float


@dataclass(frozen=True)
class Realized:
    """How logged scores turned out once their horizon had passed."""

    decisions: int
    labelled: int
    auc: float | None
    mean_risk: float | None
    observed_rate: float | None
    ece: float | None
    outcomes: dict[str, int] = field(default_factory=dict)
    # Decisions about patients the model was not fit to score (status not_eligible): left out of the figures.
    not_eligible: int = 0


@dataclass(frozen=True)
class MonitorReport:
    """What `lapse monitor` found."""

    model_name: str
    model_version: str
    as_of: str | None
    snapshots: int
    drift: list[FeatureDrift]
    realized: Realized | None

    @property
    def worst(self) -> str:
        levels = {d.level for d in self.drift}
        return "alarm" if "alarm" in levels else "watch" if "watch" in levels else "ok"


Reference = dict[str, dict[int, ReferenceHistogram]]


def load_reference(tracking_uri: str, model: LoadedModel) -> Reference:
    """The training reference the model's run logged: per feature, per as-of day (-1: pooled)."""
    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    run_id = client.get_model_version(model.name, model.version).run_id
    if not run_id:
        raise MonitorError(f"{model.name} version {model.version} has no training run, so no reference")
    try:
        path = client.download_artifacts(run_id, REFERENCE_FILE)
    except Exception as error:  # noqa: BLE001 - any failure means there is no reference to compare with
        raise MonitorError(f"the training run of version {model.version} has no {REFERENCE_FILE} "
                           f"({type(error).__name__}); retrain with this lapse to log it") from None
    logged = json.loads(Path(path).read_text())["features"]
    out: Reference = {}
    for name, entry in logged.items():
        out[name] = {int(day): ReferenceHistogram.from_logged(e) for day, e in entry.get("by_as_of_day", {}).items()}
        out[name][-1] = ReferenceHistogram.from_logged(entry["pooled"])
    return out


def recent_snapshots(data_dir: Path, model: LoadedModel, as_of: pd.Timestamp | None,
                     window_days: int = WINDOW_DAYS) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Features (and as_of_day) of the eligible snapshots at the model's as-of days in the window before `as_of`."""
    cohort = load_cohort(data_dir)
    end = as_utc_instant(as_of if as_of is not None else read_data_end(data_dir, cohort.events))
    snaps = snapshot_times(cohort.patients, model.feature_config.as_of_days)
    inside = (snaps["as_of"] <= end) & (snaps["as_of"] > end - pd.Timedelta(days=window_days))
    snaps = snaps.loc[inside.to_numpy()].reset_index(drop=True)
    if len(snaps):
        eligible = compute_labels(cohort.events, snaps[["patient_id", "as_of"]], end, model.label_config)["eligible"]
        snaps = snaps.loc[eligible.to_numpy()].reset_index(drop=True)
    if len(snaps) == 0:
        raise MonitorError(f"no eligible snapshot of {data_dir} at the model's as-of days in the {window_days} days "
                           f"before {end.isoformat()}")
    features = compute_features(cohort.patients, cohort.events, snaps[["patient_id", "as_of"]],
                                config=model.feature_config)
    features["as_of_day"] = snaps["as_of_day"].to_numpy()
    return features, end


def feature_drift(features: pd.DataFrame, reference: Reference, names: tuple[str, ...]) -> list[FeatureDrift]:
    """PSI per feature of the model (per as-of day, weighted by the recent snapshots of each day), largest first."""
    lacking = [n for n in names if n not in reference]
    if lacking:
        raise MonitorError(f"the training reference lacks feature(s): {', '.join(lacking[:10])}")
    days = features["as_of_day"].to_numpy()
    out = []
    for name in names:
        values = features[name].to_numpy(dtype=np.float64, na_value=np.nan)
        total, weights = 0.0, 0
        for day in np.unique(days):
            ref = reference[name].get(int(day), reference[name][-1])
            part = values[days == day]
            total += len(part) * psi(ref.shares(), recent_shares(part, ref))
            weights += len(part)
        value = total / weights
        out.append(FeatureDrift(name, value, level(value), reference[name][-1].missing_share,
                                float(np.isnan(values).mean())))
    return sorted(out, key=lambda d: -d.psi)


def read_decision_rows(db_url: str) -> pd.DataFrame:
    """patient_id, as_of, risk and status of every logged decision (the decision log's `decisions` table);
    status is "scored" in rows logged before statuses were recorded."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            if not inspector.has_table("decisions"):
                raise MonitorError(f"{db_url} holds no decisions table")
            has_status = "status" in {c["name"] for c in inspector.get_columns("decisions")}
            status = "COALESCE(status, 'scored')" if has_status else "'scored'"
            rows = connection.execute(sa.text(f"SELECT patient_id, as_of, risk, {status} FROM decisions")).all()
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["patient_id", "as_of", "risk", "status"])
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    return frame


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Share-weighted mean |observed - predicted| over equal-width risk bins."""
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(index):
        inside = index == b
        total += inside.mean() * abs(y[inside].mean() - p[inside].mean())
    return float(total)


def realized(db_url: str, data_dir: Path | None, model: LoadedModel) -> Realized:
    """Realized AUC and calibration of the logged decisions whose horizon has passed (labels from the data)."""
    logged = read_decision_rows(db_url)
    kinds = read_outcomes(db_url)["kind"].value_counts().to_dict()
    outcomes = {str(k): int(v) for k, v in kinds.items()}
    # A not-eligible patient's risk is no prediction (models/status.py): it does not judge the model.
    scored = (logged["status"] == "scored").to_numpy()
    decisions, not_eligible = logged[scored].reset_index(drop=True), int((~scored).sum())
    if data_dir is None or decisions.empty:
        return Realized(len(decisions), 0, None, None, None, None, outcomes, not_eligible)
    cohort = load_cohort(data_dir)
    data_end = read_data_end(data_dir, cohort.events)
    labels = compute_labels(cohort.events, decisions[["patient_id", "as_of"]], data_end, model.label_config)
    y = labels["dropout"].to_numpy(dtype=np.float64)
    known = ~np.isnan(y)
    y, p = y[known], decisions["risk"].to_numpy(dtype=np.float64)[known]
    if len(y) == 0:
        return Realized(len(decisions), 0, None, None, None, None, outcomes, not_eligible)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None
    return Realized(len(decisions), len(y), auc, float(p.mean()), float(y.mean()),
                    expected_calibration_error(y, p), outcomes, not_eligible)


def run_monitor(model: LoadedModel, tracking_uri: str, data_dir: Path | None = None, decisions_url: str | None = None,
                as_of: pd.Timestamp | None = None, window_days: int = WINDOW_DAYS) -> MonitorReport:
    """Drift of the data folder's active patients and, with a decision log, realized performance."""
    if data_dir is None and decisions_url is None:
        raise MonitorError("give --data DIR (feature drift), --decisions DB (realized performance), or both")
    drift: list[FeatureDrift] = []
    snapshots, moment = 0, None
    if data_dir is not None:
        features, moment = recent_snapshots(data_dir, model, as_of, window_days)
        drift = feature_drift(features, load_reference(tracking_uri, model), model.feature_names)
        snapshots = len(features)
    done = realized(decisions_url, data_dir, model) if decisions_url is not None else None
    return MonitorReport(model.name, model.version, moment.isoformat() if moment is not None else None, snapshots,
                         drift, done)
