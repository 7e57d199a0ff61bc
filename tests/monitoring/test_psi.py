"""PSI against a logged training reference: what the monitor's alarm levels rest on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.psi import ALARM, WATCH, ReferenceHistogram, level, psi, recent_shares


def _reference(values: np.ndarray, bins: int = 10) -> ReferenceHistogram:
    """A reference built the way training logs it (quantile edges, numpy histogram counts)."""
    known = values[~np.isnan(values)]
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(known, bins=edges)[0]
    return ReferenceHistogram(len(values), float(np.isnan(values).mean()), tuple(edges), tuple(int(c) for c in counts))


def test_the_same_distribution_is_ok_and_a_shifted_one_is_an_alarm():
    rng = np.random.default_rng(3)
    train = rng.normal(10, 2, 20_000)
    ref = _reference(train)
    same = psi(ref.shares(), recent_shares(rng.normal(10, 2, 5_000), ref))
    moved = psi(ref.shares(), recent_shares(rng.normal(13, 2, 5_000), ref))
    assert same < WATCH and level(same) == "ok"
    assert moved >= ALARM and level(moved) == "alarm"
    assert level(0.15) == "watch"


def test_values_outside_the_training_range_and_missing_values_count():
    ref = _reference(np.arange(100, dtype=float))
    beyond = recent_shares(np.array([-50.0, 500.0, 50.0, np.nan]), ref)
    assert beyond.sum() == pytest.approx(1.0)
    assert beyond[0] == beyond[-2] == beyond[-1] == pytest.approx(0.25)
    all_missing = psi(ref.shares(), recent_shares(np.full(100, np.nan), ref))
    assert level(all_missing) == "alarm"


def test_a_logged_entry_is_read_as_training_wrote_it():
    from training.artifacts import feature_distributions

    frame = pd.DataFrame({"x": np.r_[np.arange(90, dtype=float), [np.nan] * 10]})
    logged = feature_distributions(frame, ["x"], bins=5)["features"]["x"]["pooled"]
    ref = ReferenceHistogram.from_logged(logged)
    assert ref.missing_share == pytest.approx(0.1) and ref.shares().sum() == pytest.approx(1.0)
    assert psi(ref.shares(), recent_shares(frame["x"].to_numpy(), ref)) == pytest.approx(0.0, abs=1e-9)
