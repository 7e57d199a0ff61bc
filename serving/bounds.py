"""The ranges a patient's numbers and times must lie in before they reach the model.

Pydantic checks types and finiteness; this checks that every value is possible: within float32 (the
model's number type: 1e308 would overflow inside XGBoost), within the feature's documented range
(counts and durations not negative, flags 0 or 1, shares 0 to 1, questionnaire scores within their
scale, age as in the data contract), event values within the contract's VALUE_RULES, and no time
before `Hardening.earliest_time`. Problems name the field and the rule, never the value. In a batch,
each patient is checked on its own, so one bad patient does not fail the others; a patient id sent
twice in one request is refused.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

import numpy as np

from features.catalog import build_features
from features.contract import PATIENT_COLUMNS, VALUE_RULES
from features.event_index import TYPES, aware_micros

from .sent import SentEvents, sent_groups

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# Units whose values are counts, durations or rates: never negative.
_NOT_NEGATIVE = {"days", "sessions", "minutes", "modules", "exercises", "check-ins", "messages", "hours",
                 "reminders", "ratio", "years"}
_SCALES = {"phq9": 27.0, "gad7": 21.0}


def _contract_range(name: str) -> tuple[float | None, float | None]:
    for column in PATIENT_COLUMNS:
        if column.name == name:
            return column.low, column.high
    return None, None


@lru_cache(maxsize=1)
def feature_ranges() -> dict[str, tuple[float, float]]:
    """(lowest, highest) accepted value of each catalog feature."""
    out: dict[str, tuple[float, float]] = {}
    for spec in build_features():
        low, high = -FLOAT32_MAX, FLOAT32_MAX
        if spec.unit in ("flag", "share"):
            low, high = 0.0, 1.0
        elif spec.unit == "0-10":
            low, high = 0.0, 10.0
        elif spec.unit in _NOT_NEGATIVE:
            low = 0.0
        scale = next((top for key, top in _SCALES.items() if key in spec.name), None)
        if scale is not None:
            low, high = (-scale, scale) if spec.name.endswith("_change") else (0.0, scale)
        if spec.name == "mood_change_since_first":
            low, high = -10.0, 10.0
        contract_low, contract_high = _contract_range(spec.name)
        low = low if contract_low is None else float(contract_low)
        high = high if contract_high is None else float(contract_high)
        out[spec.name] = (low, high)
    return out


def _problem(field: str, rule: str, kind: str) -> dict[str, str]:
    return {"field": field, "rule": rule, "type": kind}


def _range_rule(low: float, high: float) -> str:
    if low == -FLOAT32_MAX and high == FLOAT32_MAX:
        return "must be a number the model can hold (within ±3.4e38)"
    if high == FLOAT32_MAX:
        return f"must be at least {low:g}"
    return f"must be between {low:g} and {high:g}"


def feature_problems(features: dict[str, float | None], where: str) -> list[dict[str, str]]:
    """Out-of-range values among one patient's features (unknown names are left to the scorer)."""
    problems = []
    for name, value in features.items():
        rule = _out_of_range(name, value)
        if rule is not None:
            # A name that cannot be a feature name is not repeated back: it may be data in the wrong place.
            field = f"{where}.features.{name}" if _NAME.fullmatch(name) else f"{where}.features"
            problems.append(_problem(field, rule, "out_of_range"))
    return problems


def value_problems(names: Sequence[str], values: Sequence[float | None], where: str) -> list[dict[str, str]]:
    """Out-of-range values among one patient's `values` (named, in order, by the request's `feature_names`)."""
    problems = []
    for j, (name, value) in enumerate(zip(names, values)):
        rule = _out_of_range(name, value)
        if rule is not None:
            # The field is a position: the name, when it can be a feature name, is said in the rule.
            shown = f" (feature_names[{j}], {name})" if _NAME.fullmatch(name) else f" (feature_names[{j}])"
            problems.append(_problem(f"{where}.values[{j}]", rule + shown, "out_of_range"))
    return problems


def _out_of_range(name: str, value: float | None) -> str | None:
    """The rule a value of feature `name` breaks (float32's range for a name that is not a catalog feature), or
    None when it is in range or not known."""
    if value is None:
        return None
    low, high = feature_ranges().get(name, (-FLOAT32_MAX, FLOAT32_MAX))
    return None if low <= value <= high else _range_rule(low, high)


def _value_range(event_type) -> tuple[float, float]:
    rule = VALUE_RULES.get(event_type)
    low = -FLOAT32_MAX if rule is None or rule.low is None else float(rule.low)
    high = FLOAT32_MAX if rule is None or rule.high is None else float(rule.high)
    return low, high


# Lowest and highest value of each event type, by type code (position in TYPES).
_EVENT_LOW, _EVENT_HIGH = (np.array(bound) for bound in zip(*(_value_range(t) for t in TYPES)))


def event_problems(events: Sequence, sent: SentEvents, where: str, earliest: datetime) -> list[dict[str, str]]:
    """Event values outside float32 or the contract's VALUE_RULES, and events dated before `earliest`.

    `sent` is the same events as arrays: they are checked all at once, and only a patient with a problem has
    its events looked at one by one, to name them.
    """
    values = sent.values
    with np.errstate(invalid="ignore"):  # NaN (no value) compares False: never out of range
        bad = (sent.times < aware_micros(earliest)) | (values < _EVENT_LOW[sent.codes]) | (
            values > _EVENT_HIGH[sent.codes])
    if not bad.any():
        return []
    problems = []
    for j in bad.nonzero()[0].tolist():
        event = events[j]
        if event.timestamp < earliest:
            problems.append(_problem(f"{where}.events[{j}].timestamp", f"must not be before {earliest:%Y-%m-%d}",
                                     "too_early"))
        if event.value is None:
            continue
        low, high = _value_range(event.event_type)
        if not low <= event.value <= high:
            problems.append(_problem(f"{where}.events[{j}].value", _range_rule(low, high), "out_of_range"))
    return problems


def patient_problems(item, where: str, earliest: datetime, check_features: bool = True,
                     feature_names: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Every range problem of one request item (a PatientIn); its features' only if `check_features` (its
    `values` are named by the request's `feature_names`)."""
    problems = []
    if item.as_of is not None and item.as_of < earliest:
        problems.append(_problem(f"{where}.as_of", f"must not be before {earliest:%Y-%m-%d}", "too_early"))
    if item.features is not None and check_features:
        problems += feature_problems(item.features, where)
    if item.values is not None and check_features and feature_names is not None:
        problems += value_problems(feature_names, item.values, where)
    if item.profile is not None and item.profile.enrolled_at < earliest:
        problems.append(_problem(f"{where}.profile.enrolled_at", f"must not be before {earliest:%Y-%m-%d}",
                                 "too_early"))
    if item.events:
        problems += event_problems(item.events, item.sent_events, where, earliest)
    return problems


def duplicate_problems(items: Sequence) -> list[dict[str, str]]:
    """A patient id sent more than once in one request (which answer would count?)."""
    ids = [item.patient_id for item in items]
    if len(set(ids)) == len(ids):
        return []
    first: dict[str, int] = {}
    problems = []
    for i, item in enumerate(items):
        if item.patient_id in first:
            problems.append(_problem(f"patients[{i}].patient_id",
                                     f"repeats patients[{first[item.patient_id]}].patient_id: send each patient once",
                                     "duplicate_patient"))
        else:
            first[item.patient_id] = i
    return problems


@lru_cache(maxsize=64)
def _limits(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest accepted value of each of `names`, in that order (float32's range for a name that is
    not a catalog feature: the scorer names those)."""
    ranges = feature_ranges()
    pairs = [ranges.get(name, (-FLOAT32_MAX, FLOAT32_MAX)) for name in names]
    return np.array([low for low, _ in pairs]), np.array([high for _, high in pairs])


def _feature_suspects(items: Sequence) -> dict[int, tuple[str, ...]]:
    """The items whose sent features include a value out of range (checked a column at a time): position ->
    the names of its block's values."""
    suspects: dict[int, tuple[str, ...]] = {}
    for group in sent_groups(items):
        low, high = _limits(group.block.names)
        values = group.block.values[group.rows]
        # NaN (not known) compares false: not out of range.
        bad = ((values < low) | (values > high)).any(axis=1)
        suspects.update((group.positions[k], group.block.names) for k in np.flatnonzero(bad).tolist())
    return suspects


def batch_problems(items: Sequence, earliest: datetime) -> dict[int, list[dict[str, str]]]:
    """Range problems by item position, for the items that have any."""
    suspects = _feature_suspects(items)
    out = {}
    for i, item in enumerate(items):
        names = suspects.get(i)
        if names is None and item.profile is None and item.events is None and (
                item.as_of is None or item.as_of >= earliest):
            continue  # (the common case, said here: a call per patient costs more than this check)
        found = patient_problems(item, f"patients[{i}]", earliest, check_features=names is not None,
                                 feature_names=names)
        if found:
            out[i] = found
    return out
