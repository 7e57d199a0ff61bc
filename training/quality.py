"""Which features the training data can support: those absent, all-missing or constant are left out of the model."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.honesty import TrainingRefused

log = logging.getLogger("lapse.training")

ABSENT, ALL_MISSING, CONSTANT = "absent", "all missing", "constant"


@dataclass(frozen=True)
class DataQuality:
    """The features a model may use, and each feature left out with its reason (absent, all missing, constant)."""

    used: tuple[str, ...]
    left_out: tuple[tuple[str, str], ...]

    def lines(self) -> list[str]:
        """The printable summary: counts, then the features left out grouped by reason (names only)."""
        total = len(self.used) + len(self.left_out)
        out = [f"data quality: {len(self.used)} of {total} features used, {len(self.left_out)} left out"]
        for reason in (ABSENT, ALL_MISSING, CONSTANT):
            names = [name for name, why in self.left_out if why == reason]
            if names:
                out.append(f"  {reason} ({len(names)}): {', '.join(names)}")
        return out

    def as_record(self) -> dict:
        return {"used": list(self.used), "left_out": [{"feature": n, "reason": r} for n, r in self.left_out]}


def feature_quality(table: pd.DataFrame, names: list[str]) -> DataQuality:
    """Split `names` into the features the table can support and those it cannot.

    A feature is left out when it is not a column of the table (absent), has no value on any row (all
    missing), or takes a single value on every row (constant; a value or missing counts as two values, since
    whether a value is known can itself predict).
    """
    used, left_out = [], []
    for name in names:
        if name not in table.columns:
            left_out.append((name, ABSENT))
            continue
        values = table[name].to_numpy(dtype=np.float64, na_value=np.nan)
        known = values[~np.isnan(values)]
        if len(known) == 0:
            left_out.append((name, ALL_MISSING))
        elif len(known) == len(values) and known.min() == known.max():
            left_out.append((name, CONSTANT))
        else:
            used.append(name)
    quality = DataQuality(tuple(used), tuple(left_out))
    for line in quality.lines():
        log.info("%s", line)
    return quality


def usable_features(specs: list, baseline: list[str], quality: DataQuality) -> tuple[list, list[str], list[str]]:
    """The catalog specs and model features the data supports; the baseline model keeps its usable features,
    or, with none (a program without patient covariates), the usable feature that comes first."""
    used = set(quality.used)
    if not used:
        raise TrainingRefused("no feature has more than one value in the training data: nothing to learn from")
    kept_baseline = [name for name in baseline if name in used] or [quality.used[0]]
    return [s for s in specs if s.name in used], list(quality.used), kept_baseline
