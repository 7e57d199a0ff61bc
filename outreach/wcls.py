"""Weighted and centred least squares (WCLS; Boruvka, Almirall, Witkiewitz & Murphy 2018, JASA 113:1112).

At each available decision t of unit i the action A in {0, 1} was randomized with known
probability p. With a fixed reference probability p~ (a constant here), weights

    W = (p~ / p)^A * ((1 - p~) / (1 - p))^(1 - A)

and the centred action (A - p~), least squares of Y on [G, (A - p~) S] weighted by W gives
beta, the causal excursion effect of A on Y moderated by S: S'beta is the best linear fit of
E[Y(1) - Y(0) | S] over the decisions. G (the control part) only buys precision: beta stays
consistent whatever G is, because the centring makes the effect part orthogonal to it.

Standard errors: the sandwich, clustered by unit (decisions of one person are correlated).
With "mancl-derouen" each unit's residuals are first multiplied by (I - H_ii)^-1, H_ii the unit's
block of the weighted hat matrix (Mancl & DeRouen 2001, Biometrics 57:126), as Boruvka et al.
do; "hc0" leaves them as they are. Intervals use Student's t with n - p - q degrees of freedom
(n units, p control and q effect terms), again as Boruvka et al. Numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from outreach.errors import OutreachError

SMALL_SAMPLE = ("mancl-derouen", "hc0")


@dataclass(frozen=True)
class WclsFit:
    """The effect coefficients of one WCLS fit and their sandwich covariance."""

    terms: tuple[str, ...]
    beta: np.ndarray
    cov: np.ndarray
    df: int
    n_units: int
    n_decisions: int

    def std_error(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))

    def interval(self, confidence: float) -> tuple[np.ndarray, np.ndarray]:
        half = stats.t.ppf(0.5 + confidence / 2.0, self.df) * self.std_error()
        return self.beta - half, self.beta + half

    def p_value(self) -> np.ndarray:
        se = self.std_error()
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, np.abs(self.beta) / se, np.where(self.beta == 0, 0.0, np.inf))
        return 2.0 * stats.t.sf(t, self.df)


def weights(action: np.ndarray, probability: np.ndarray, reference: float) -> np.ndarray:
    """W = (p~/p)^A ((1-p~)/(1-p))^(1-A)."""
    return np.where(action == 1, reference / probability, (1.0 - reference) / (1.0 - probability))


def _cluster_scores(X: np.ndarray, w: np.ndarray, e: np.ndarray, starts: np.ndarray, bread_inv: np.ndarray,
                    small_sample: str) -> np.ndarray:
    """One row per unit: X_i' W_i e~_i, with e~_i the (optionally bias-reduced) residuals."""
    if small_sample == "hc0":
        return np.add.reduceat(X * (w * e)[:, None], starts, axis=0)
    ends = np.append(starts[1:], len(e))
    scores = np.empty((len(starts), X.shape[1]))
    for u, (lo, hi) in enumerate(zip(starts, ends)):
        Xi, wi, ei = X[lo:hi], w[lo:hi], e[lo:hi]
        hat = Xi @ bread_inv @ (Xi.T * wi)
        adjusted = np.linalg.solve(np.eye(hi - lo) - hat, ei)
        scores[u] = Xi.T @ (wi * adjusted)
    return scores


def wcls(y: np.ndarray, action: np.ndarray, probability: np.ndarray, unit: np.ndarray,
         controls: np.ndarray, moderators: np.ndarray, terms: tuple[str, ...], reference: float,
         small_sample: str = "mancl-derouen") -> WclsFit:
    """Fit WCLS; `controls` is G (n x p, include a constant), `moderators` S (n x q), `unit` integer codes.

    Every row must be an available decision: 0 < probability < 1.
    """
    if small_sample not in SMALL_SAMPLE:
        raise OutreachError(f"small_sample must be one of {', '.join(SMALL_SAMPLE)}", field="small_sample")
    if not 0.0 < reference < 1.0:
        raise OutreachError("the reference probability must be strictly between 0 and 1", field="reference")
    order = np.argsort(unit, kind="stable")
    y, a, p, unit = y[order], action[order], probability[order], unit[order]
    G, S = controls[order], moderators[order]
    X = np.hstack([G, (a - reference)[:, None] * S])
    w = weights(a, p, reference)
    bread = (X.T * w) @ X
    if np.linalg.matrix_rank(bread) < X.shape[1]:
        raise OutreachError(f"the effect of {', '.join(terms)} cannot be told apart from the controls "
                            "(a moderator or tier without variation, or both actions missing)", field="moderators")
    bread_inv = np.linalg.inv(bread)
    theta = bread_inv @ ((X.T * w) @ y)
    e = y - X @ theta
    starts = np.flatnonzero(np.r_[True, unit[1:] != unit[:-1]])
    n_units = len(starts)
    df = n_units - X.shape[1]
    if df < 1:
        raise OutreachError(f"{n_units} unit(s) are too few for {X.shape[1]} terms (need more units than terms)",
                            field="unit")
    scores = _cluster_scores(X, w, e, starts, bread_inv, small_sample)
    cov = bread_inv @ (scores.T @ scores) @ bread_inv
    q = S.shape[1]
    return WclsFit(terms=terms, beta=theta[-q:], cov=cov[-q:, -q:], df=df, n_units=n_units, n_decisions=len(y))
