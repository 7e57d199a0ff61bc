"""`lapse monitor`: how recent inputs compare with the training reference, and how the scores turned out.

- Drift (`--data DIR`): the features of the patients active at `as_of` (enrolled and eligible under
  the model's label definition, as `lapse score-batch` picks them), computed by the same
  `compute_features` as training, each compared with the training reference that the run logged
  (feature_distributions.json) by PSI (monitoring/psi.py: 0.1 watch, 0.25 alarm).
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
from features.validate import load_cohort
from models.loaded import LoadedModel
from outreach.outcomes import read_outcomes

from .psi import ReferenceHistogram, level, psi, recent_shares

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


@dataclass(frozen=True)
class MonitorReport:
    """What `lapse monitor` found."""

    model_name: str
    model_version: str
    as_of: str | None
    patients: int
    drift: list[FeatureDrift]
    realized: Realized | None

    @property
    def worst(self) -> str:
        levels = {d.level for d in self.drift}
        return "alarm" if "alarm" in levels else "watch" if "watch" in levels else "ok"


def load_reference(tracking_uri: str, model: LoadedModel) -> dict[str, ReferenceHistogram]:
    """The per-feature training reference the model's run logged."""
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
    return {name: ReferenceHistogram.from_logged(entry["pooled"]) for name, entry in logged.items()}


def active_features(data_dir: Path, model: LoadedModel, as_of: pd.Timestamp | None) -> tuple[pd.DataFrame,
                                                                                              pd.Timestamp]:
    """Features of the patients active at `as_of` (default: the data's end), and that time."""
    cohort = load_cohort(data_dir)
    moment = as_utc_instant(as_of if as_of is not None else read_data_end(data_dir, cohort.events))
    enrolled = cohort.patients.loc[cohort.patients["enrolled_at"] <= moment, "patient_id"]
    rows = pd.DataFrame({"patient_id": enrolled.array,
                         "as_of": pd.Series(moment, index=range(len(enrolled))).astype("datetime64[us, UTC]").array})
    eligible = compute_labels(cohort.events, rows, moment, model.label_config)["eligible"].to_numpy()
    rows = rows.loc[eligible].reset_index(drop=True)
    if len(rows) == 0:
        raise MonitorError(f"no patient of {data_dir} is active at {moment.isoformat()}")
    return compute_features(cohort.patients, cohort.events, rows, config=model.feature_config), moment


def feature_drift(features: pd.DataFrame, reference: dict[str, ReferenceHistogram],
                  names: tuple[str, ...]) -> list[FeatureDrift]:
    """PSI per feature of the model, largest first (features without a reference are named in the error)."""
    lacking = [n for n in names if n not in reference]
    if lacking:
        raise MonitorError(f"the training reference lacks feature(s): {', '.join(lacking[:10])}")
    out = []
    for name in names:
        values = features[name].to_numpy(dtype=np.float64, na_value=np.nan)
        ref = reference[name]
        value = psi(ref.shares(), recent_shares(values, ref))
        out.append(FeatureDrift(name, value, level(value), ref.missing_share, float(np.isnan(values).mean())))
    return sorted(out, key=lambda d: -d.psi)


def read_decision_rows(db_url: str) -> pd.DataFrame:
    """patient_id, as_of and risk of every logged decision (the decision log's `decisions` table)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("decisions"):
                raise MonitorError(f"{db_url} holds no decisions table")
            rows = connection.execute(sa.text("SELECT patient_id, as_of, risk FROM decisions")).all()
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["patient_id", "as_of", "risk"])
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
    decisions = read_decision_rows(db_url)
    kinds = read_outcomes(db_url)["kind"].value_counts().to_dict()
    outcomes = {str(k): int(v) for k, v in kinds.items()}
    if data_dir is None or decisions.empty:
        return Realized(len(decisions), 0, None, None, None, None, outcomes)
    cohort = load_cohort(data_dir)
    data_end = read_data_end(data_dir, cohort.events)
    labels = compute_labels(cohort.events, decisions[["patient_id", "as_of"]], data_end, model.label_config)
    y = labels["dropout"].to_numpy(dtype=np.float64)
    known = ~np.isnan(y)
    y, p = y[known], decisions["risk"].to_numpy(dtype=np.float64)[known]
    if len(y) == 0:
        return Realized(len(decisions), 0, None, None, None, None, outcomes)
    auc = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None
    return Realized(len(decisions), len(y), auc, float(p.mean()), float(y.mean()),
                    expected_calibration_error(y, p), outcomes)


def run_monitor(model: LoadedModel, tracking_uri: str, data_dir: Path | None = None, decisions_url: str | None = None,
                as_of: pd.Timestamp | None = None) -> MonitorReport:
    """Drift of the data folder's active patients and, with a decision log, realized performance."""
    if data_dir is None and decisions_url is None:
        raise MonitorError("give --data DIR (feature drift), --decisions DB (realized performance), or both")
    drift: list[FeatureDrift] = []
    patients, moment = 0, None
    if data_dir is not None:
        features, moment = active_features(data_dir, model, as_of)
        drift = feature_drift(features, load_reference(tracking_uri, model), model.feature_names)
        patients = len(features)
    done = realized(decisions_url, data_dir, model) if decisions_url is not None else None
    return MonitorReport(model.name, model.version, moment.isoformat() if moment is not None else None, patients,
                         drift, done)
