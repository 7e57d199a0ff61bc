"""Batch scores of every active patient with the scoring core, per patient partition.

The same function scores one in-memory cohort (local engine) or each partition of a Dask
cohort, so a patient's risk, tier and reasons do not depend on the engine or the partitioning;
and the core is the service's, so they equal what the API answers for the same patient.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd

from config import EventsConfig, LabelConfig, ServingConfig
from engines.features import canonical_partition
from features.labels import compute_labels
from features.point_in_time import compute_features
from models.loaded import LoadedModel, ModelRefused, alias_version, batch_threads, load_version
from models.results import Reason
from models.scoring import score_frame

SCORE_COLUMNS = ("patient_id", "as_of", "risk", "tier", "trigger", "priority", "model_name", "model_version",
                 "reasons")


def score_meta() -> pd.DataFrame:
    """The empty batch score table: column names and dtypes."""
    return pd.DataFrame({
        "patient_id": pd.Series([], dtype="str"), "as_of": pd.Series([], dtype="datetime64[us, UTC]"),
        "risk": pd.Series([], dtype=np.float64), "tier": pd.Series([], dtype="str"),
        "trigger": pd.Series([], dtype=bool), "priority": pd.Series([], dtype="str"),
        "model_name": pd.Series([], dtype="str"), "model_version": pd.Series([], dtype="str"),
        "reasons": pd.Series([], dtype="str"),
    })


def active_patients(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp,
                    label_config: LabelConfig, events_config: EventsConfig = EventsConfig()) -> pd.DataFrame:
    """(patient_id, as_of) of patients enrolled by `as_of` and eligible under the label definition then
    (own engagement includes the program's declared own-engagement types, `events_config`)."""
    enrolled = patients.loc[patients["enrolled_at"] <= as_of, "patient_id"]
    frame = pd.DataFrame({"patient_id": enrolled.array,
                          "as_of": pd.Series(as_of, index=range(len(enrolled))).astype("datetime64[us, UTC]").array})
    labels = compute_labels(events, frame, as_of, label_config, events_config)
    return frame.loc[labels["eligible"].to_numpy()].reset_index(drop=True)


def _reasons_json(reasons: list[Reason]) -> str:
    """The reasons as the JSON list of the API's reason objects."""
    return json.dumps([{"feature": r.feature, "label": r.label, "value": r.value, "contribution": r.contribution,
                        "sentence": r.sentence} for r in reasons])


def score_cohort(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.Timestamp, model: LoadedModel,
                 top_reasons: int = 5, engaged_within_days: int | None = None) -> pd.DataFrame:
    """Risk, tier, support decision and top reasons (JSON) for every active patient of canonical tables.

    Active: eligible under the model's label definition, or with own engagement within `engaged_within_days`.
    """
    label_config = model.label_config
    if engaged_within_days is not None:
        label_config = label_config.model_copy(update={"engaged_within_days": engaged_within_days})
    rows = active_patients(patients, events, as_of, label_config, model.feature_config.events)
    if len(rows) == 0:
        return score_meta()
    features = compute_features(patients, events, rows, config=model.feature_config)
    answers = score_frame(features, model, top_reasons)
    return pd.DataFrame({
        "patient_id": rows["patient_id"].astype("str").array,
        "as_of": rows["as_of"].array,
        "risk": np.array([a.risk for a in answers], dtype=np.float64),
        "tier": pd.array([a.tier for a in answers], dtype="str"),
        "trigger": np.array([a.support.trigger for a in answers], dtype=bool),
        "priority": pd.array([a.support.priority for a in answers], dtype="str"),
        "model_name": pd.array([model.name] * len(answers), dtype="str"),
        "model_version": pd.array([model.version] * len(answers), dtype="str"),
        "reasons": pd.array([_reasons_json(a.reasons) for a in answers], dtype="str"),
    })


def _score_partition(patients: pd.DataFrame, events: pd.DataFrame, moments: tuple[pd.Timestamp, ...], model,
                     top_reasons: int, engaged_within_days: int | None, declared: EventsConfig,
                     partition_info=None) -> pd.DataFrame:
    cohort = canonical_partition(patients, events, partition_info["number"] if partition_info else 0, declared)
    if cohort is None:
        return score_meta()
    scored = [score_cohort(cohort.patients, cohort.events, moment, model, top_reasons, engaged_within_days)
              for moment in moments]
    return scored[0] if len(scored) == 1 else pd.concat(scored, ignore_index=True)


def distributed_scores(cohort, as_of: pd.Timestamp | Sequence[pd.Timestamp], model: LoadedModel, top_reasons: int = 5,
                       engaged_within_days: int | None = None):
    """A lazy Dask frame of `score_cohort` rows at `as_of` (or at each of several as-of times, in their order
    within a partition), one partition per patient partition."""
    import dask.dataframe as dd  # the optional [dask] extra: only this engine needs it

    moments = (as_of,) if isinstance(as_of, pd.Timestamp) else tuple(as_of)
    return dd.map_partitions(_score_partition, cohort.patients, cohort.events, moments, model, top_reasons,
                             engaged_within_days, cohort.declared, meta=score_meta(), align_dataframes=False)


def load_served_model(tracking_uri: str, alias: str = "champion", model_name: str | None = None) -> LoadedModel:
    """The registered version behind `alias`, loaded and checked exactly as the service loads it.

    Raises ValueError (naming the alias or version and why) when there is no usable model.
    """
    defaults = ServingConfig()
    name = model_name or defaults.model_name
    try:
        version = alias_version(tracking_uri, name, alias)
    except Exception as error:  # noqa: BLE001 - any registry failure means there is no model to use
        raise ValueError(f"no usable model: alias {alias!r} of {name!r} not found ({type(error).__name__})") from error
    try:
        return load_version(tracking_uri, name, version, alias, defaults.tiers_source, defaults.warmup_predictions,
                            batch_threads(workers=1))
    except ModelRefused as refusal:
        raise ValueError(f"no usable model: {refusal}") from refusal
