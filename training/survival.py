"""Time to dropout: when a patient stops, beside the risk at the horizon (no I/O, no tracking).

An XGBoost accelerated-failure-time model (survival:aft, log-normal) on the same features and rows
as the risk model learns the days from each as-of day until the patient stops. What counts as a
stop is observable: the day of a discontinuation event, else the last own engagement when at least
`quiet_days` quiet days follow it before the data end; otherwise the patient is censored at the
data end. It is judged on the temporal test rows against the simulator's truth (the latent quit
day; censored at the end of the simulation) with Harrell's concordance index and the calibration of
P(stopped within h days), next to a Kaplan-Meier baseline fitted per as-of day and patient group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy.stats import norm

from config import TrainingConfig
from models.calibration import PlattCalibration, fit_platt
from features.contract import OWN_ENGAGEMENT, EventType
from training.metrics import brier, expected_calibration_error
from training.splits import Split

DAY = pd.Timedelta(days=1)
MODEL = "aft"
BASELINE = "kaplan_meier"
# A stop on the as-of day itself is put half a day later: AFT needs positive times.
_EARLIEST = 0.5


@dataclass(frozen=True)
class SurvivalOutcome:
    """The fitted time-to-dropout model, its and the baseline's test metrics, and whether to use it."""

    booster: xgb.Booster
    sigma: float  # the log-normal spread the trees were fitted under
    calibrations: tuple[PlattCalibration, ...]  # per horizon, on validation rows (see calibrate_horizons)
    metrics: dict[str, dict[str, float]]  # {"aft": {...}, "kaplan_meier": {...}}
    by_day: dict[str, dict[int, dict[str, float]]]  # model -> as-of day -> c_index
    use: bool
    reason: str
    test_rows: int


def observed_stops(patients: pd.DataFrame, events: pd.DataFrame, data_end: pd.Timestamp,
                   quiet_days: int) -> pd.DataFrame:
    """Per patient: `stop_day` (days since enrolment) and `stopped` (False: censored at the data end)."""
    enrolled = patients.set_index("patient_id")["enrolled_at"]
    kind = events["event_type"].astype(str)
    own = events[kind.isin({str(t) for t in OWN_ENGAGEMENT})].groupby("patient_id")["timestamp"].max()
    quit_at = events[kind == str(EventType.DISCONTINUED)].groupby("patient_id")["timestamp"].min()
    frame = pd.DataFrame({"enrolled_at": enrolled})
    observed = ((data_end - frame["enrolled_at"]) / DAY).to_numpy(dtype=np.float64)
    last = ((own.reindex(frame.index) - frame["enrolled_at"]) / DAY).to_numpy(dtype=np.float64, na_value=np.nan)
    last = np.where(np.isnan(last), 0.0, last)
    quit = ((quit_at.reindex(frame.index) - frame["enrolled_at"]) / DAY).to_numpy(dtype=np.float64, na_value=np.nan)
    lapsed = observed - last >= quiet_days
    stopped = ~np.isnan(quit) | lapsed
    stop_day = np.where(~np.isnan(quit), quit, np.where(lapsed, last, observed))
    return pd.DataFrame({"patient_id": frame.index.astype(str), "stop_day": stop_day, "stopped": stopped})


def true_stops(truth: pd.DataFrame) -> pd.DataFrame:
    """Per patient from the simulator's truth: the latent quit day, or censored at the end of simulation."""
    quit = truth["quit_day"].to_numpy(dtype=np.float64, na_value=np.nan)
    stopped = ~np.isnan(quit)
    end = truth["simulated_days"].to_numpy(dtype=np.float64)
    return pd.DataFrame({"patient_id": truth["patient_id"].astype(str).to_numpy(),
                         "stop_day": np.where(stopped, quit, end), "stopped": stopped})


def row_times(table: pd.DataFrame, stops: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Days from each row's as-of day until the stop (at least half a day), and whether it is a stop."""
    keyed = table[["patient_id"]].astype({"patient_id": "str"}).merge(
        stops, on="patient_id", how="left", validate="many_to_one")
    if keyed["stop_day"].isna().any():
        raise ValueError(f"{int(keyed['stop_day'].isna().sum())} training row(s) have a patient with no stop "
                         "information (not in the patients or truth table)")
    days = table["as_of_day"].to_numpy(dtype=np.float64)
    time = np.maximum(keyed["stop_day"].to_numpy(dtype=np.float64) - days, _EARLIEST)
    return time, keyed["stopped"].to_numpy(dtype=bool)


def concordance(time: np.ndarray, event: np.ndarray, risk: np.ndarray, block: int = 1024) -> tuple[float, int]:
    """Harrell's C: among pairs where the earlier time is a stop, the share the risk orders right (ties: half)."""
    time, event, risk = (np.asarray(a) for a in (time, event, risk))
    concordant, pairs = 0.0, 0
    for start in range(0, len(time), block):
        i = slice(start, start + block)
        comparable = event[i, None] & (time[i, None] < time[None, :])
        higher = risk[i, None] > risk[None, :]
        tied = risk[i, None] == risk[None, :]
        concordant += float((comparable & higher).sum() + 0.5 * (comparable & tied).sum())
        pairs += int(comparable.sum())
    return (concordant / pairs if pairs else float("nan")), pairs


class TooFewOutcomes(ValueError):
    """The data cannot support a time-to-dropout view (training goes on without it, and says why)."""


def stop_probability(margin: np.ndarray, sigma: float, horizon: float) -> np.ndarray:
    """P(stopped within `horizon` days) of a log-normal AFT model with log-scale location `margin`."""
    return norm.cdf((np.log(horizon) - margin) / sigma)


def known_by(time: np.ndarray, event: np.ndarray, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose status at `horizon` is known (stopped by then, or still in at it), and whether they stopped."""
    stopped = event & (time <= horizon)
    known = stopped | (time > horizon)
    return known, stopped[known].astype(np.float64)


def calibrate_horizons(margin: np.ndarray, time: np.ndarray, event: np.ndarray, sigma: float,
                       horizons: tuple[int, ...]) -> list[PlattCalibration]:
    """Platt scaling of the model's P(stopped within h), one per horizon, on these (validation) rows.

    The log-normal shape the trees are fitted under is one spread for every horizon; recalibrating each
    horizon on rows the trees did not learn from corrects it, as Platt scaling does for the risk model.
    """
    out = []
    for h in horizons:
        known, stopped = known_by(time, event, h)
        if len(stopped) == 0 or stopped.min() == stopped.max():
            raise TooFewOutcomes(f"not fitted: the validation rows whose status at {h} days is known hold "
                                 f"{'no rows' if len(stopped) == 0 else 'one outcome only'}, so that horizon "
                                 "cannot be calibrated")
        out.append(fit_platt(_logit(stop_probability(margin[known], sigma, h)), stopped))
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p) - np.log1p(-p)


def _aft_matrix(X: np.ndarray, time: np.ndarray, event: np.ndarray) -> xgb.DMatrix:
    matrix = xgb.DMatrix(X, nthread=1)
    matrix.set_float_info("label_lower_bound", time)
    matrix.set_float_info("label_upper_bound", np.where(event, time, np.inf))
    return matrix


def fit_aft(X: np.ndarray, time: np.ndarray, event: np.ndarray, split: Split, config: TrainingConfig) -> xgb.Booster:
    """The AFT trees on the split's train rows, early-stopping on its validation rows."""
    p = config.xgboost
    params = {"objective": "survival:aft", "eval_metric": "aft-nloglik", "aft_loss_distribution": "normal",
              "aft_loss_distribution_scale": config.survival.aft_sigma, "tree_method": "hist",
              "learning_rate": p.learning_rate, "max_depth": p.max_depth, "min_child_weight": p.min_child_weight,
              "subsample": p.subsample, "colsample_bytree": p.colsample_bytree, "reg_lambda": p.reg_lambda,
              "nthread": p.nthread, "seed": config.seed}
    train = _aft_matrix(X[split.train], time[split.train], event[split.train])
    valid = _aft_matrix(X[split.validation], time[split.validation], event[split.validation])
    return xgb.train(params, train, num_boost_round=p.max_rounds, evals=[(valid, "validation")],
                     early_stopping_rounds=p.early_stopping_rounds, verbose_eval=False)


def kaplan_meier_at(time: np.ndarray, event: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Kaplan-Meier survival at each grid time (product-limit; at a tie, stops count before censorings).

    The same estimate as reporting.survival.kaplan_meier, which training may not import (layers).
    """
    times, inverse = np.unique(time, return_inverse=True)
    stops = np.bincount(inverse, weights=event.astype(np.float64), minlength=len(times))
    at_risk = np.bincount(inverse, minlength=len(times))[::-1].cumsum()[::-1].astype(np.float64)
    survival = np.cumprod(1.0 - stops / at_risk)
    at = np.searchsorted(times, grid, side="right") - 1
    return np.where(at >= 0, survival[np.clip(at, 0, None)], 1.0)


def km_stop_probabilities(time: np.ndarray, event: np.ndarray, keys: np.ndarray, fit_rows: np.ndarray,
                          score_rows: np.ndarray, horizons: tuple[int, ...]) -> np.ndarray:
    """P(stopped within each horizon) for `score_rows`: 1 - Kaplan-Meier survival of the row's key on `fit_rows`.

    Keys unseen in `fit_rows` get the estimate of all of them pooled.
    """
    grid = np.asarray(horizons, dtype=np.float64)

    def curve(rows: np.ndarray) -> np.ndarray:
        return 1.0 - kaplan_meier_at(time[rows], event[rows], grid)

    pooled = curve(fit_rows)
    out = np.tile(pooled, (len(score_rows), 1))
    fit_keys, score_keys = keys[fit_rows], keys[score_rows]
    for key in np.unique(score_keys):
        chosen = fit_rows[fit_keys == key]
        if len(chosen):
            out[score_keys == key] = curve(chosen)
    return out


def _judge(prob: np.ndarray, risk: np.ndarray, time: np.ndarray, event: np.ndarray, days: np.ndarray,
           horizons: tuple[int, ...], bins: int) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
    """C-index (pairs within an as-of day) and, per horizon, ECE and Brier of P(stopped within h)."""
    out, by_day, concordant, pairs = {}, {}, 0.0, 0
    for day in sorted(int(d) for d in np.unique(days)):
        rows = days == day
        c, n = concordance(time[rows], event[rows], risk[rows])
        by_day[day] = {"c_index": c}
        if n:
            concordant, pairs = concordant + c * n, pairs + n
    out["c_index"] = concordant / pairs if pairs else float("nan")
    for k, h in enumerate(horizons):
        known, stopped = known_by(time, event, h)
        out[f"ece_{h}d"] = expected_calibration_error(stopped, prob[known, k], bins)
        out[f"brier_{h}d"] = brier(stopped, prob[known, k])
        out[f"stopped_{h}d"] = float(stopped.mean()) if len(stopped) else float("nan")
        out[f"mean_predicted_{h}d"] = float(prob[known, k].mean()) if known.any() else float("nan")
    out["mean_ece"] = float(np.mean([out[f"ece_{h}d"] for h in horizons]))
    return out, by_day


def fit_time_to_dropout(table: pd.DataFrame, feature_names: list[str], split: Split, observed: pd.DataFrame,
                        truth: pd.DataFrame, groups: pd.DataFrame,
                        config: TrainingConfig = TrainingConfig()) -> SurvivalOutcome:
    """Fit the AFT model on observed stops, judge it and the Kaplan-Meier baseline on the truth's test rows.

    `table` and `split` are the risk model's (rows reset to 0..n-1); `groups` has patient_id and the
    baseline's group column. It is to be used only if its C-index and its mean ECE both beat the baseline's.
    """
    settings = config.survival
    X = table[feature_names].to_numpy(dtype=np.float64, na_value=np.nan)
    time, event = row_times(table, observed)
    booster = fit_aft(X, time, event, split, config)
    true_time, true_event = row_times(table, true_stops(truth))
    test = split.test
    days = table["as_of_day"].to_numpy()
    val, sigma = split.validation, settings.aft_sigma
    val_margin = booster.predict(xgb.DMatrix(X[val], nthread=1), output_margin=True).astype(np.float64)
    calibrations = calibrate_horizons(val_margin, time[val], event[val], sigma, settings.horizons)
    margin = booster.predict(xgb.DMatrix(X[test], nthread=1), output_margin=True).astype(np.float64)
    prob = np.column_stack([cal.risk(_logit(stop_probability(margin, sigma, h)))
                            for cal, h in zip(calibrations, settings.horizons)])
    # Calibrated separately, horizons could cross; having stopped by a later day is never less likely.
    prob = np.maximum.accumulate(prob, axis=1)
    group = settings.baseline_group
    labels = (table[["patient_id"]].astype({"patient_id": "str"})
              .merge(groups.astype({"patient_id": "str"}), on="patient_id", how="left")
              .get(group, pd.Series("all", index=table.index)).fillna("unknown").astype(str).to_numpy())
    keys = np.char.add(np.char.add(days.astype(str), "|"), labels.astype(str))
    fit_rows = np.concatenate([split.train, split.validation])
    km_prob = km_stop_probabilities(time, event, keys, fit_rows, test, settings.horizons)
    metrics, by_day = {}, {}
    # A shorter predicted time is a higher risk of stopping; the baseline ranks by its longest horizon.
    metrics[MODEL], by_day[MODEL] = _judge(prob, -margin, true_time[test], true_event[test], days[test],
                                           settings.horizons, config.ece_bins)
    metrics[BASELINE], by_day[BASELINE] = _judge(km_prob, km_prob[:, -1], true_time[test], true_event[test],
                                                 days[test], settings.horizons, config.ece_bins)
    model, base = metrics[MODEL], metrics[BASELINE]
    better_rank = model["c_index"] > base["c_index"]
    better_calibration = model["mean_ece"] <= base["mean_ece"]
    use = bool(better_rank and better_calibration)
    reason = (f"C-index {model['c_index']:.3f} vs Kaplan-Meier {base['c_index']:.3f}; mean ECE "
              f"{model['mean_ece']:.3f} vs {base['mean_ece']:.3f} at {', '.join(map(str, settings.horizons))} days")
    return SurvivalOutcome(booster, sigma, tuple(calibrations), metrics, by_day, use, reason, len(test))
