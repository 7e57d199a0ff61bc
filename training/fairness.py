"""Subgroup performance: who the model serves well, and the evidence-based fairness gate.

`subgroup_table` and `tpr_gaps` describe the training run (TPR at the operating threshold per
group). `group_evidence` is what `lapse promote` gates on: per protected attribute and group,
AUC against the rest of the holdout, calibration within the group and TPR, each with a
patient-level bootstrap interval, judged against tolerances (see docs/training.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd

from config import PromotionGates
from training.bootstrap import PairCounts, band_calibration, interval, resample_weights, true_positive_rate
from training.metrics import roc_auc

UNKNOWN = "unknown"
PASS, FAIL, INCONCLUSIVE, INSUFFICIENT = "pass", "fail", "inconclusive", "insufficient evidence"


def subgroup_table(y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, threshold: float,
                   min_size: int, min_positives: int) -> pd.DataFrame:
    """Per attribute and group: rows, positives, AUC, TPR at `threshold`, and whether it enters the gap."""
    y = np.asarray(y, dtype=np.float64)
    flagged = np.asarray(p, dtype=np.float64) >= threshold
    rows = []
    for attribute in groups.columns:
        values = groups[attribute].to_numpy()
        for group in sorted(pd.unique(values)):
            mask = values == group
            n = int(mask.sum())
            positives = int(y[mask].sum())
            tpr = float(flagged[mask & (y == 1)].mean()) if positives else math.nan
            rows.append({
                "attribute": attribute,
                "group": str(group),
                "rows": n,
                "positives": positives,
                "auc": roc_auc(y[mask], np.asarray(p)[mask]),
                "tpr": tpr,
                "in_gap": bool(n >= min_size and positives >= min_positives and group != UNKNOWN),
            })
    return pd.DataFrame(rows, columns=["attribute", "group", "rows", "positives", "auc", "tpr", "in_gap"])


def tpr_gaps(table: pd.DataFrame) -> dict[str, float]:
    """Largest minus smallest TPR per attribute over the groups large enough to count (NaN if < 2)."""
    gaps = {}
    for attribute, part in table.groupby("attribute", sort=False):
        counted = part.loc[part["in_gap"], "tpr"].dropna()
        gaps[str(attribute)] = float(counted.max() - counted.min()) if len(counted) >= 2 else math.nan
    return gaps


def largest_gap(gaps: dict[str, float]) -> float:
    """The largest TPR gap over attributes (0.0 when no attribute has two countable groups)."""
    known = [g for g in gaps.values() if not math.isnan(g)]
    return max(known) if known else 0.0


# ---------------------------------------------------------------- the fairness gate

@dataclass(frozen=True)
class Estimate:
    """A metric on the holdout and its bootstrap interval (NaN where it cannot be estimated)."""

    value: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


@dataclass(frozen=True)
class Finding:
    """One check of one group that the evidence says fails (or cannot settle)."""

    def __str__(self) -> str:
        return f"{self.attribute}={self.group} {self.metric} {self.detail}"


    attribute: str
    group: str
    metric: str
    verdict: str
    detail: str


@dataclass(frozen=True)
class GroupEvidence:
    """Every measured quantity of one group, with the group's verdict."""

    attribute: str
    group: str
    rows: int
    patients: int
    positives: int
    status: str
    auc: Estimate
    auc_rest: Estimate
    auc_gap: Estimate
    calibration_error: Estimate
    observed_expected: Estimate
    tpr: Estimate
    auc_change: Estimate | None
    calibration_change: Estimate | None


@dataclass(frozen=True)
class FairnessReport:
    """The evidence for every group of every gated attribute, and what fails."""

    groups: tuple[GroupEvidence, ...]
    findings: tuple[Finding, ...]
    rows: int
    patients: int
    resampled: str
    resamples: int
    confidence: float
    tolerances: dict[str, float]

    @property
    def failures(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.verdict == FAIL)

    def table(self) -> pd.DataFrame:
        """One row per group: counts, status and every estimate as value / low / high columns."""
        records = []
        for g in self.groups:
            record = {k: v for k, v in asdict(g).items() if not isinstance(v, dict) and v is not None}
            for name, est in asdict(g).items():
                if isinstance(est, dict):
                    record.update({f"{name}{suffix}": est[key] for key, suffix in
                                   (("value", ""), ("low", "_low"), ("high", "_high"))})
            records.append(record)
        return pd.DataFrame(records)

    def to_dict(self) -> dict:
        """JSON-ready: settings, every group's estimates and the findings (NaN as None)."""
        def clean(value):
            if isinstance(value, float) and math.isnan(value):
                return None
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean({
            "rows": self.rows, "patients": self.patients, "resampled": self.resampled,
            "resamples": self.resamples, "confidence": self.confidence, "tolerances": self.tolerances,
            "groups": [asdict(g) for g in self.groups], "findings": [asdict(f) for f in self.findings],
        })

    def lines(self) -> list[str]:
        """The verdict as readable lines: one per group, the inconclusive checks, then the failing ones."""
        out = [f"fairness evidence on {self.rows:,} holdout rows of {self.patients:,} patients "
               f"({self.resamples} {self.resampled}-level bootstrap resamples, {self.confidence:.0%} intervals)",
               f"  {'attribute':<15}{'group':<10}{'pos':>5}  {'AUC [CI]':<22}{'AUC gap to rest':<24}"
               f"{'calib. error':<22}{'O/E':<22}{'TPR':<22}status"]
        for g in self.groups:
            out.append(f"  {g.attribute:<15}{g.group:<10}{g.positives:>5}  {str(g.auc):<22}{str(g.auc_gap):<24}"
                       f"{str(g.calibration_error):<22}{str(g.observed_expected):<22}{str(g.tpr):<22}{g.status}")
        unsettled = [f"{f.attribute}={f.group} {f.metric}" for f in self.findings if f.verdict == INCONCLUSIVE]
        if unsettled:
            out.append(f"  inconclusive (the interval straddles the limit): {', '.join(unsettled)}")
        out += [f"  FAIL: {f}" for f in self.failures]
        return out


def _estimate(values: np.ndarray, confidence: float) -> Estimate:
    return Estimate(float(values[0]), *interval(values, confidence))


def _judge(est: Estimate, limit: float, higher_is_worse: bool) -> str:
    """fail when the whole interval is beyond the limit (in the metric's units), pass when it is all
    within, else inconclusive."""
    low, high = (est.low, est.high) if higher_is_worse else (-est.high, -est.low)
    limit = limit if higher_is_worse else -limit
    if math.isnan(low) or math.isnan(high):
        return INCONCLUSIVE
    return FAIL if low > limit else PASS if high <= limit else INCONCLUSIVE


def group_evidence(y: np.ndarray, risk: np.ndarray, threshold: float, groups: pd.DataFrame,
                   patient_key: np.ndarray | None, gates: PromotionGates = PromotionGates(), seed: int = 0,
                   champion_risk: np.ndarray | None = None) -> FairnessReport:
    """Bootstrap every group's AUC, calibration and TPR and judge them against the gates' tolerances.

    `groups` holds one text column per attribute aligned to `y` and `risk`; `patient_key` numbers
    the patients (None: every row is resampled on its own). `champion_risk`, when given, is the
    champion's risks on the same rows: each group's AUC and calibration error are then also compared
    with the champion's on the same resamples.
    """
    y = np.asarray(y, dtype=np.float64)
    risk = np.asarray(risk, dtype=np.float64)
    key = np.arange(len(y)) if patient_key is None else np.asarray(patient_key)
    weights = resample_weights(key, gates.bootstrap_resamples, seed)
    flagged = (risk >= threshold).astype(np.float32)
    pairs = PairCounts(risk, y, weights)
    champ = None if champion_risk is None else np.asarray(champion_risk, dtype=np.float64)
    champ_pairs = PairCounts(champ, y, weights) if champ is not None else None
    conf = gates.confidence
    evidence, findings = [], []
    for attribute in [a for a in gates.fairness_attributes if a in groups.columns]:
        values = groups[attribute].astype("str").to_numpy()
        for group in sorted(pd.unique(values)):
            mask = values == group
            w = weights[mask]
            positives = int(y[mask].sum())
            auc, rest = pairs.group_and_rest(mask, weights)
            # Fewer bands in a small group: a band of a handful of rows is all sampling noise.
            bands = max(1, min(gates.calibration_bands, int(mask.sum()) // gates.calibration_band_rows))
            calib, ratio = band_calibration(y[mask], risk[mask], w, bands)
            auc_change = calibration_change = None
            if champ_pairs is not None:
                champ_auc, _ = champ_pairs.group_and_rest(mask, weights)
                champ_calib, _ = band_calibration(y[mask], champ[mask], w, bands)
                auc_change = _estimate(auc - champ_auc, conf)
                calibration_change = _estimate(calib - champ_calib, conf)
            item = GroupEvidence(
                attribute, str(group), int(mask.sum()), len(np.unique(key[mask])), positives, PASS,
                _estimate(auc, conf), _estimate(rest, conf), _estimate(auc - rest, conf),
                _estimate(calib, conf), _estimate(ratio, conf),
                _estimate(true_positive_rate(y[mask], flagged[mask], w), conf), auc_change, calibration_change)
            enough = positives >= gates.group_min_positives and int(mask.sum()) - positives >= gates.group_min_negatives
            if not enough:
                evidence.append(replace(item, status=INSUFFICIENT))
                continue
            checks = [("AUC gap to rest", item.auc_gap, -gates.group_auc_gap, False),
                      ("calibration error", item.calibration_error, gates.group_calibration_error, True)]
            if auc_change is not None:
                checks += [("AUC vs champion", auc_change, -gates.group_regression, False),
                           ("calibration error vs champion", calibration_change, gates.group_regression, True)]
            verdicts = []
            for metric, est, limit, higher_is_worse in checks:
                verdict = _judge(est, limit, higher_is_worse)
                verdicts.append(verdict)
                if verdict != PASS:
                    where = ("wholly " + ("above" if higher_is_worse else "below")) if verdict == FAIL else "across"
                    findings.append(Finding(attribute, str(group), metric, verdict, f"{est} {where} {limit:g}"))
            status = FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS
            evidence.append(replace(item, status=status))
    tolerances = {"group_auc_gap": gates.group_auc_gap, "group_calibration_error": gates.group_calibration_error,
                  "group_regression": gates.group_regression}
    return FairnessReport(tuple(evidence), tuple(findings), len(y), len(np.unique(key)),
                          "row" if patient_key is None else "patient", gates.bootstrap_resamples, conf, tolerances)
