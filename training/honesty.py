"""Honesty checks of a training run: refuse a split that cannot be evaluated, flag a model no better than a rule.

Before fitting, each part of the split must hold at least `[training] min_class_rows` dropouts and as many
non-dropouts (else the run stops, exit 2, registering nothing). After fitting, a model whose headline test
AUC is below 0.5 (inverted), or below the best one-feature rule's, is flagged in the output and in MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from config import LapseError
from training.evaluation import POOLED, slice_masks
from training.metrics import roc_auc
from training.splits import Split

CHANCE_AUC = 0.5


class TrainingRefused(LapseError):
    """The data cannot support an honest model (a part of the split with one class, or too few of one)."""


def check_split_classes(y: np.ndarray, split: Split, min_class_rows: int) -> None:
    """TrainingRefused naming each part of the split with fewer than `min_class_rows` rows of either class."""
    short = []
    for part, rows in zip(("train", "validation", "test"), split):
        positives = int(np.asarray(y)[rows].sum())
        negatives = len(rows) - positives
        if min(positives, negatives) < min_class_rows:
            short.append(f"{part}: {len(rows):,} rows, {positives:,} dropouts, {negatives:,} non-dropouts")
    if short:
        raise TrainingRefused(
            f"the split cannot give an honest model: each part needs at least {min_class_rows} dropouts and "
            f"{min_class_rows} non-dropouts ([training] min_class_rows); nothing was registered.\n  "
            + "\n  ".join(short)
            + "\nUse more patients or later data, a longer horizon, or other as-of days.")


@dataclass(frozen=True)
class OneFeatureRule:
    """The single feature that best ranks the training rows, its direction, and its AUC on train and test."""

    feature: str
    higher_is_riskier: bool
    train_auc: float
    test_auc: float

    def describe(self) -> str:
        direction = "higher" if self.higher_is_riskier else "lower"
        return f"{self.feature} ({direction} is riskier)"


def best_one_feature_rule(table: pd.DataFrame, split: Split, names: list[str], test_mask: np.ndarray,
                          label: str = "dropout") -> OneFeatureRule | None:
    """The best one-feature rule, chosen on the train rows and scored on the test rows in `test_mask`.

    A rule ranks rows by one feature (missing values at the train median), in the direction that ranks the
    train rows best. None when no feature ranks the train rows at all.
    """
    y = table[label].to_numpy(dtype=np.float64)
    best: OneFeatureRule | None = None
    for name in names:
        x = table[name].to_numpy(dtype=np.float64, na_value=np.nan)
        train_x = x[split.train]
        if np.isnan(train_x).all():
            continue
        x = np.where(np.isnan(x), np.nanmedian(train_x), x)
        auc = roc_auc(y[split.train], x[split.train])
        if math.isnan(auc):
            continue
        higher = auc >= CHANCE_AUC
        oriented = max(auc, 1.0 - auc)
        if best is None or oriented > best.train_auc:
            score = x[split.test] if higher else -x[split.test]
            best = OneFeatureRule(name, higher, oriented, roc_auc(y[split.test][test_mask], score[test_mask]))
    return best


@dataclass(frozen=True)
class HonestyReport:
    """The best one-feature rule on the headline slice and each model's flag (empty when honest)."""

    headline: str
    rule: OneFeatureRule | None
    flags: tuple[str, ...]

    def lines(self) -> list[str]:
        out = []
        if self.rule is not None:
            out.append(f"best one-feature rule: {self.rule.describe()}, test AUC {self.rule.test_auc:.3f} "
                       f"({self.headline})")
        out += [f"WARNING: {flag}" for flag in self.flags]
        return out

    def metrics(self) -> dict[str, float]:
        if self.rule is None:
            return {}
        return {f"one_feature_rule.{self.headline}.auc": self.rule.test_auc,
                "one_feature_rule.train_auc": self.rule.train_auc, "honesty.flags": float(len(self.flags))}

    def tags(self) -> dict[str, str]:
        tags = {"lapse.honesty": "flagged" if self.flags else "ok"}
        if self.rule is not None:
            tags["lapse.one_feature_rule"] = self.rule.describe()
        if self.flags:
            tags["lapse.honesty.flags"] = "; ".join(self.flags)[:5000]
        return tags


def review(table: pd.DataFrame, split: Split, feature_names: list[str], headline: str,
           headline_auc: dict[str, float]) -> HonestyReport:
    """Flag each model (name -> headline test AUC) below chance or below the best one-feature rule."""
    table = table.reset_index(drop=True)
    days_test = table["as_of_day"].to_numpy()[split.test]
    masks = slice_masks(days_test)
    mask = masks.get(headline, masks[POOLED])
    rule = best_one_feature_rule(table, split, feature_names, mask)
    flags = []
    for model, auc in headline_auc.items():
        if math.isnan(auc):
            flags.append(f"{model}: test AUC is not defined ({headline})")
        elif auc < CHANCE_AUC:
            flags.append(f"{model}: test AUC {auc:.3f} is below 0.5 ({headline}): its ranking is inverted")
        elif rule is not None and not math.isnan(rule.test_auc) and auc < rule.test_auc:
            flags.append(f"{model}: test AUC {auc:.3f} is below the best one-feature rule's {rule.test_auc:.3f} "
                         f"({rule.describe()}, {headline})")
    return HonestyReport(headline, rule, tuple(flags))
