"""Batch scores of every active patient, with the service's own scoring functions, per patient partition.

The same function scores one in-memory cohort (local engine) or each partition of a Dask
cohort, so a patient's risk, tier and reasons do not depend on the engine or the partitioning.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import pandas as pd

from config import LabelConfig

SCORE_COLUMNS = ("patient_id", "as_of", "risk", "tier", "trigger", "priority", "model_name", "model_version",
                 "reasons")


class _Item(NamedTuple):
    patient_id: str


def score_meta() -> pd.DataFrame:
    """The empty batch score table: column names and dtypes."""
    return pd.DataFrame({
        "patient_id": pd.Series([], dtype="str"), "as_of": pd.Series([], dtype="datetime64[us, UTC]"),
        "risk": pd.Series([], dtype=np.float64), "tier": pd.Series([], dtype="str"),
        "trigger": pd.Series([], dtype=bool), "priority": pd.Series([], dtype="str"),
        "model_name": pd.Series([], dtype="str"), "model_version": pd.Series([], dtype="str"),
        "reasons": pd.Series([], dtype="str"),
    })


def label_config_of(meta: dict) -> LabelConfig:
    """The label definition a model was trained for (defaults where its metadata records none)."""
    recorded = meta.get("label") if isinstance(meta.get("label"), dict) else {}
    known = {k: v for k, v in recorded.items() if k in LabelConfig.__dataclass_fields__}
    return LabelConfig(**known)


def active_patients(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp,
                    label_config: LabelConfig) -> pd.DataFrame:
    """(patient_id, as_of) of patients enrolled by `as_of` and eligible under the label definition then."""
    from features.labels import compute_labels

    enrolled = patients.loc[patients["enrolled_at"] <= as_of, "patient_id"]
    frame = pd.DataFrame({"patient_id": enrolled.array,
                          "as_of": pd.Series(as_of, index=range(len(enrolled))).astype("datetime64[us, UTC]").array})
    labels = compute_labels(events, frame, as_of, label_config)
    return frame.loc[labels["eligible"].to_numpy()].reset_index(drop=True)


def score_cohort(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, model,
                 top_reasons: int = 5) -> pd.DataFrame:
    """Risk, tier, support decision and top reasons (JSON) for every active patient of canonical tables."""
    from features.point_in_time import compute_features
    from serving.scoring import patient_scores, score_matrix

    rows = active_patients(patients, events, as_of, label_config_of(model.meta))
    if len(rows) == 0:
        return score_meta()
    features = compute_features(patients, events, rows, config=model.feature_config)
    X = features.loc[:, list(model.feature_names)].to_numpy(dtype=np.float64)
    stamps = list(rows["as_of"])
    answers = patient_scores([_Item(p) for p in rows["patient_id"]], score_matrix(X, stamps, model), model,
                             top_reasons)
    out = pd.DataFrame({
        "patient_id": rows["patient_id"].astype("str").array,
        "as_of": rows["as_of"].array,
        "risk": np.array([a["risk"] for a in answers], dtype=np.float64),
        "tier": pd.array([a["tier"] for a in answers], dtype="str"),
        "trigger": np.array([a["support"]["trigger"] for a in answers], dtype=bool),
        "priority": pd.array([a["support"]["priority"] for a in answers], dtype="str"),
        "model_name": pd.array([model.name] * len(answers), dtype="str"),
        "model_version": pd.array([model.version] * len(answers), dtype="str"),
        "reasons": pd.array([json.dumps(a["reasons"]) for a in answers], dtype="str"),
    })
    return out


def _score_partition(patients: pd.DataFrame, events: pd.DataFrame, as_of, model, top_reasons: int,
                     partition_info=None) -> pd.DataFrame:
    from engines.features import canonical_partition

    cohort = canonical_partition(patients, events, partition_info["number"] if partition_info else 0)
    if cohort is None:
        return score_meta()
    return score_cohort(cohort.patients, cohort.events, as_of, model, top_reasons)


def distributed_scores(cohort, as_of: pd.Timestamp, model, top_reasons: int = 5):
    """A lazy Dask frame of `score_cohort` rows, one partition per patient partition."""
    import dask.dataframe as dd

    return dd.map_partitions(_score_partition, cohort.patients, cohort.events, as_of, model, top_reasons,
                             meta=score_meta(), align_dataframes=False)


def load_served_model(tracking_uri: str, alias: str = "champion", model_name: str | None = None):
    """The registered version behind `alias`, loaded and checked exactly as the service loads it."""
    from dataclasses import replace

    from config import RegistryConfig, ServingConfig
    from serving.model_store import ModelStore

    config = replace(ServingConfig(), alias=alias, workers=1,
                     **({"registry": RegistryConfig(registered_model=model_name)} if model_name else {}))
    store = ModelStore(config, tracking_uri)
    outcome = store.reload()
    if store.current is None:
        raise ValueError(f"no usable model: {outcome.detail}")
    return store.current
