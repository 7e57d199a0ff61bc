"""Reason sentences: the words of a value are the catalog's own, however many other values were worded before it
(the sentence caches keep words by the value as printed, so a new value mostly finds them already made)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from features.catalog import FEATURES
from models import reasons
from models.reasons import forget_sentences, sentence


def _expected(name: str, value: float | None, raises: bool) -> str:
    """The sentence as the catalog words it, with no cache in between (-0.0 as 0.0)."""
    spec = next(s for s in FEATURES if s.name == name)
    words = spec.describe(math.nan if value is None else value + 0.0)
    if value is None and words.lower() == "not recorded":
        words = f"{spec.label}: not recorded"
    return f"{words} {'raises' if raises else 'lowers'} risk"


def _values(seed: int) -> list[float]:
    """Values near every rounding edge of one, two and three decimals, both signs, zero and its sign, and spread
    values, in a shuffled order (so a value is often worded after another printed the same)."""
    rng = np.random.default_rng(seed)
    edges = [k / 2 + d for k in range(-12, 13) for d in (-1e-9, 0.0, 1e-9)]
    edges += [k / 20 + d for k in range(-10, 11) for d in (-1e-9, 0.0, 1e-9)]
    edges += [k / 200 + d for k in range(-10, 11) for d in (-1e-12, 0.0, 1e-12)]
    spread = [*rng.normal(0, 3, 300), *rng.uniform(-1, 1, 300), *rng.exponential(20, 200), 1e6, -1e6]
    values = [*edges, 0.0, -0.0, 1.0, -1.0, 0.995, 1.005, 0.9999, 1.0001, *spread]
    return [float(v) for v in rng.permutation(np.asarray(values, dtype=np.float64))]


@pytest.mark.parametrize("seed", [0, 1])
def test_every_feature_is_worded_as_the_catalog_words_it(seed):
    forget_sentences()
    values = _values(seed)
    for spec in FEATURES:
        for value in [None, *values]:
            for raises in (True, False):
                assert sentence(spec.name, value, raises) == _expected(spec.name, value, raises), (spec.name, value)


def test_new_values_printed_alike_share_their_words():
    """A batch of new values: the days since the last session, printed without decimals, are worded once per day
    shown, not once per value."""
    forget_sentences()
    rng = np.random.default_rng(3)
    days = rng.uniform(0, 30, 2000)
    said = {sentence("days_since_last_session", float(d), True) for d in days}
    assert said == {_expected("days_since_last_session", float(d), True) for d in days}
    worded = [key for key in reasons._WORDED if key[0] == "days_since_last_session"]
    assert len(worded) == len(said) <= 31
    forget_sentences()
    assert not reasons._WORDED and sentence.cache_info().currsize == 0


def test_values_with_one_key_are_worded_alike_whatever_the_phrases_print():
    """A feature whose phrases print the value differently (one decimal up, none down, `{value}` as is, a share):
    two values with the same key always get the same words."""
    from features.catalog import FeatureSpec

    specs = [FeatureSpec("x", "X", "points", "patient", phrase="Up by {value:.1f} point{s}",
                         phrase_down="Down by {value:.0f} point{s}", steady="Steady"),
             FeatureSpec("y", "Y", "points", "patient", phrase="Y at {value}"),
             FeatureSpec("z", "Z", "share", "patient", phrase="{value:.0%} of days, {value:.1f}")]
    for spec in specs:
        by_key: dict[object, str] = {}
        for value in _values(5):
            value += 0.0  # (-0.0 equals 0.0 as a key; sentence words it as 0.0)
            words = by_key.setdefault(spec.words_key(value), spec.describe(value))
            assert words == spec.describe(value), (spec.phrase, value)
