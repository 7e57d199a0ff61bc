"""What the service decides, as Prometheus metrics beside the request counters (served at /metrics).

- `lapse_risk_score`: histogram of the risks answered (by endpoint).
- `lapse_decisions_total{endpoint, tier}`: patients answered per tier.
- `lapse_support_triggers_total{endpoint, priority}`: patients for whom support was triggered.
- `lapse_refused_requests_total{route, status}`: scoring requests refused (401, 413, 415, 422, 429, ...).
- `lapse_left_out_patients_total{route}`: patients left out of a batch that was otherwise scored (a value
  out of range; the guard marks the request's scope with LEFT_OUT).
- `lapse_scored_rows_total` and `lapse_feature_missing_total{feature}`: patients scored (every feature has
  one value per patient) and how many of a feature's values were missing, so `missing / rows` is each
  feature's missing rate (e.g. in PromQL:
  `rate(lapse_feature_missing_total[1h]) / ignoring(feature) group_left rate(lapse_scored_rows_total[1h])`).
  One counter for the rows keeps the per-request cost to one increment plus one per feature actually missing.

Labels come from closed sets (routes, status codes, the model's tiers and features), never from a
request. The metrics live in BentoML's registry, which adds up the worker processes; the registry
exists only inside the server, so the metrics are made on first use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache

import numpy as np
from prometheus_client import Histogram

from .decision_log import Decision

RISK_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
SCORING_ROUTES = frozenset({"/score", "/explain", "/triage", "/decisions"})
# The scope key under which the guard records how many patients of a batch it left out.
LEFT_OUT = "lapse.left_out"


class AppMetrics:
    """The service's decision metrics, in BentoML's (multi-process) registry."""

    def __init__(self) -> None:
        from bentoml._internal.container import BentoMLContainer  # the registry of the running server

        client = BentoMLContainer.metrics_client.get()
        self.risk = client.Histogram(name="lapse_risk_score", documentation="risks answered",
                                     labelnames=["endpoint"], buckets=RISK_BUCKETS)
        self.decisions = client.Counter(name="lapse_decisions_total", documentation="patients answered, by tier",
                                        labelnames=["endpoint", "tier"])
        self.triggers = client.Counter(name="lapse_support_triggers_total",
                                       documentation="patients for whom support was triggered",
                                       labelnames=["endpoint", "priority"])
        self.refused = client.Counter(name="lapse_refused_requests_total", documentation="requests refused",
                                      labelnames=["route", "status"])
        self.left_out = client.Counter(name="lapse_left_out_patients_total",
                                       documentation="patients left out of a scored batch (values out of range)",
                                       labelnames=["route"])
        self.rows = client.Counter(name="lapse_scored_rows_total", documentation="patients (feature rows) scored")
        self.missing = client.Counter(name="lapse_feature_missing_total",
                                      documentation="feature values scored that were missing", labelnames=["feature"])

    def decided(self, decisions: Sequence[Decision]) -> None:
        """Count answered decisions: risk, tier and trigger (one increment per bucket, tier and priority seen)."""
        if not decisions:
            return
        observe_all(self.risk.labels(endpoint=decisions[0].endpoint), [d.risk for d in decisions])
        tiers = Counter([(d.endpoint, d.tier) for d in decisions])
        triggers = Counter([(d.endpoint, d.priority) for d in decisions if d.trigger])
        for (endpoint, tier), n in tiers.items():
            self.decisions.labels(endpoint=endpoint, tier=tier).inc(n)
        for (endpoint, priority), n in triggers.items():
            self.triggers.labels(endpoint=endpoint, priority=priority).inc(n)

    def scored_inputs(self, X: np.ndarray, feature_names: Sequence[str]) -> None:
        """Count the feature values of a scored matrix and how many were missing (NaN)."""
        if X.size == 0:
            return
        self.rows.inc(X.shape[0])
        missing = np.isnan(X).sum(axis=0)
        for i in np.flatnonzero(missing):
            self.missing.labels(feature=feature_names[i]).inc(int(missing[i]))

    def refusal(self, route: str, status: int, left_out: int = 0) -> None:
        """Count a refused request to a scoring route, or the patients left out of an answered batch."""
        if route not in SCORING_ROUTES:
            return
        if 400 <= status < 500:
            self.refused.labels(route=route, status=str(status)).inc()
        elif left_out:
            self.left_out.labels(route=route).inc(left_out)


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for every value, with one increment per bucket that gets any and one for the sum.

    A batch of 1,000 decisions otherwise costs 1,000 observes (about 6 ms), run on the event loop after the
    reply. As `observe` does, a value counts in the first bucket whose upper bound is at least the value
    (prometheus_client keeps per-bucket, not cumulative, counts in `_buckets`; a NaN counts in none).
    """
    bounds = np.asarray(histogram._upper_bounds, dtype=np.float64)
    first = np.searchsorted(bounds, np.asarray(values, dtype=np.float64), side="left")
    counts = np.bincount(first, minlength=len(bounds) + 1)
    for i in np.flatnonzero(counts[:len(bounds)]).tolist():
        histogram._buckets[i].inc(int(counts[i]))
    histogram._sum.inc(sum(values))


@cache
def app_metrics() -> AppMetrics:
    """This process's metrics (made on first use, inside the server)."""
    return AppMetrics()
