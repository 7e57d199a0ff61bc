"""Request items in, the model's feature matrix out: the HTTP side of scoring.

Items that bring raw `profile` + `events` go through the data contract's validation and the
same `compute_features` as training; items that bring `features` are checked against the
served model's feature list. Problems are reported by field path and rule, never by value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

from features.contract import VALUE_RULES
from features.event_index import TYPES, aware_micros
from features.point_in_time import compute_features, compute_features_one
from features.validate import ContractError, errors_in, validate_tables
from models.loaded import LoadedModel
from models.scoring import model_matrix

from .schemas import PatientIn, Profile
from .sent import sent_groups

# An as-of time this far past the server's clock is refused (clock skew allowance).
FUTURE_SKEW = timedelta(minutes=5)
_PROFILE_FIELDS = tuple(Profile.model_fields)

Locate = Callable[[int], str]
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# From this many raw patients on, features are computed through the tables (faster in bulk, slower for a few).
_TABLE_PATIENTS = 16
# Per event type code (position in TYPES): value required, lowest, highest, whole number (the contract's VALUE_RULES).
_REQUIRED = np.array([VALUE_RULES[t].required for t in TYPES])
_LOW = np.array([-np.inf if VALUE_RULES[t].low is None else VALUE_RULES[t].low for t in TYPES])
_HIGH = np.array([np.inf if VALUE_RULES[t].high is None else VALUE_RULES[t].high for t in TYPES])
_WHOLE = np.array([VALUE_RULES[t].integer for t in TYPES])


class InputProblems(Exception):
    """The request is well-formed JSON but its contents cannot be scored; `.problems` says where."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(f"{len(problems)} input problem(s)")
        self.problems = problems


def _problem(field: str, rule: str, kind: str) -> dict[str, str]:
    return {"field": field, "rule": rule, "type": kind}


def _as_of(items: Sequence[PatientIn], now: datetime, locate: Locate) -> list[datetime]:
    # Features were computed for some time already; raw events need the time to compute them for.
    unset = [i for i, item in enumerate(items) if item.as_of is None and not item.sends_features]
    if unset:
        raise InputProblems([_problem(f"{locate(i)}.as_of", "is required with profile + events (the time to "
                                      "compute the features for)", "missing") for i in unset])
    # Aware times are equal (and hash alike) when they are the same instant, whatever their zone: a batch that
    # mostly sends one as-of time converts it once.
    utc: dict[datetime, datetime] = {}
    times = []
    for item in items:
        sent = item.as_of
        if sent is None:
            times.append(now)
            continue
        converted = utc.get(sent)
        if converted is None:
            converted = utc[sent] = sent.astimezone(timezone.utc)
        times.append(converted)
    limit = now + FUTURE_SKEW
    late = [i for i, t in enumerate(times) if t > limit]
    if late:
        raise InputProblems([_problem(f"{locate(i)}.as_of", "must not be in the future", "in_future") for i in late])
    return times


@lru_cache(maxsize=64)
def _columns(sent: tuple[str, ...], wanted: tuple[str, ...]) -> np.ndarray | None:
    """Where each of `wanted` is among the `sent` names, or None unless `sent` holds exactly those names."""
    if len(sent) != len(wanted):
        return None
    where = {name: j for j, name in enumerate(sent)}
    if any(name not in where for name in wanted):
        return None
    return np.array([where[name] for name in wanted], dtype=np.intp)


def _given_features(items: Sequence[PatientIn], model: LoadedModel, X: np.ndarray, locate: Locate,
                    feature_names: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Fill X's rows from items that send feature values (`features`, or `values` named by the request's
    `feature_names`); problems for unknown or absent names."""
    names = model.feature_names
    problems: list[tuple[int, dict[str, str]]] = []
    for group in sent_groups(items, feature_names):
        columns = _columns(group.block.names, names)
        if columns is not None:  # the common case: exactly the model's names, in any order
            X[group.positions] = group.block.values[np.ix_(group.rows, columns)]
            continue
        if group.block.shared:  # the request's feature_names: said once, for the request
            problems += [(group.positions[0], p) for p in _names_problems(group.block.names, model)]
            continue
        wanted = set(names)  # other names: say which, for every item
        for i in group.positions:
            keys = items[i].features.keys()
            for name in sorted(keys - wanted):
                # A name that cannot be a feature name is not repeated back: it may be data in the wrong place.
                where = f"{locate(i)}.features.{name}" if _NAME.fullmatch(name) else f"{locate(i)}.features"
                problems.append((i, _unknown_feature(where, model)))
            problems += [(i, p) for p in _absent_features(f"{locate(i)}.features", keys, model)]
    return [problem for _, problem in sorted(problems, key=lambda p: p[0])]


def _names_problems(sent: Sequence[str], model: LoadedModel) -> list[dict[str, str]]:
    """Problems with the request's `feature_names`: names the model does not have, and its names not sent."""
    wanted = set(model.feature_names)
    problems = [_unknown_feature(f"feature_names[{j}]", model) for j, name in enumerate(sent) if name not in wanted]
    return problems + _absent_features("feature_names", sent, model)


def _unknown_feature(field: str, model: LoadedModel) -> dict[str, str]:
    return _problem(field, f"names a feature that model {model.name} version {model.version} does not have",
                    "unknown_feature")


def _absent_features(field: str, sent: Collection[str], model: LoadedModel) -> list[dict[str, str]]:
    """The problem of `sent` names lacking some of the model's features (none when it lacks none)."""
    absent = set(model.feature_names).difference(sent)
    if not absent:
        return []
    shown = ", ".join(n for n in model.feature_names if n in absent)
    return [_problem(field, f"lacks feature(s) {shown} (send null for a value that is not known)", "missing_feature")]


def _contract_problems(problems, raw_items: list[int], event_owner: np.ndarray, event_pos: np.ndarray,
                       locate: Locate) -> list[dict[str, str]]:
    """Contract problems (by table row) as request field paths."""
    out = []
    for p in errors_in(problems):
        rows = p.rows or ()
        if not rows:
            out.append(_problem(locate(raw_items[0]) if p.source == "patients" else "events", p.message, p.rule))
            continue
        for r in rows:
            if p.source == "patients":
                where = f"{locate(raw_items[r - 1])}.profile" + (f".{p.column}" if p.column else "")
            else:
                where = f"{locate(raw_items[event_owner[r - 1]])}.events[{event_pos[r - 1]}]" + (
                    f".{p.column}" if p.column else "")
            out.append(_problem(where, p.message, p.rule))
    return out


def _patient_row(profile: Profile) -> dict[str, object]:
    """The contract's canonical patients row for a profile, as `compute_features_one` takes it (name -> value).

    The request schema already holds the contract's types, ranges and categories (lower case); text is
    trimmed and an empty text is not known, as the contract reads it.
    """
    row: dict[str, object] = {}
    for name in _PROFILE_FIELDS:
        value = getattr(profile, name)
        if isinstance(value, str):
            value = value.strip() or None
        if value is not None:
            row[name] = value
    return row


def _event_arrays(item: PatientIn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One item's events as arrays: times (microseconds since the epoch), type codes and values (NaN: none)."""
    sent = item.sent_events
    return sent.times, sent.codes, sent.values


def _passes_contract(enrolled: int, times: np.ndarray, codes: np.ndarray, values: np.ndarray, limit: int) -> bool:
    """Whether one patient's events surely pass the contract's table checks (VALUE_RULES, no event before
    enrolment, nothing after `limit`). False sends the patient through `validate_tables`, whose messages say
    what is wrong."""
    if enrolled > limit or (len(times) and (times.min() < enrolled or times.max() > limit)):
        return False
    missing = np.isnan(values)
    with np.errstate(invalid="ignore"):
        broken = (values < _LOW[codes]) | (values > _HIGH[codes]) | (_REQUIRED[codes] & missing)
        broken |= _WHOLE[codes] & ~missing & (np.mod(values, 1) != 0)
    return not broken.any()


def _raw_one(item: PatientIn, as_of: datetime, model: LoadedModel, now: datetime) -> np.ndarray | None:
    """One raw item's model row through `compute_features_one`, or None if the contract checks may fail."""
    if as_of < item.profile.enrolled_at:
        return None
    arrays = _event_arrays(item)
    if not _passes_contract(aware_micros(item.profile.enrolled_at), *arrays, aware_micros(now + FUTURE_SKEW)):
        return None
    patient = _patient_row(item.profile)
    row = compute_features_one(patient, *arrays, aware_micros(as_of), config=model.feature_config)
    return row[model.catalog_columns]


def _raw_features(items: Sequence[PatientIn], rows: list[int], as_of: list[datetime], model: LoadedModel,
                  X: np.ndarray, now: datetime, locate: Locate) -> list[dict[str, str]]:
    """Fill X's rows from items that send profile + events, with the contract checks and training's features."""
    keys = [f"r{k}" for k in range(len(rows))]
    profiles = [items[i].profile for i in rows]
    columns = {name: [getattr(p, name) for p in profiles] for name in _PROFILE_FIELDS}
    # Optional columns nobody sent are left out, as a table without them would be.
    patients = pd.DataFrame({"patient_id": keys, **{n: v for n, v in columns.items() if any(x is not None for x in v)}})
    counts = np.array([len(items[i].events) for i in rows], dtype=np.int64)
    owner = np.repeat(np.arange(len(rows)), counts)
    position = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    all_events = [e for i in rows for e in items[i].events]
    events = pd.DataFrame({
        "patient_id": np.asarray(keys, dtype=object)[owner] if len(owner) else np.array([], dtype=object),
        "timestamp": pd.to_datetime([e.timestamp for e in all_events], utc=True),
        "event_type": [e.event_type.value for e in all_events],
        "value": np.array([np.nan if e.value is None else e.value for e in all_events], dtype=np.float64),
    })
    problems = [_problem(f"{locate(i)}.as_of", "must not be before profile.enrolled_at", "before_enrolment")
                for i, p in zip(rows, profiles) if as_of[i] < p.enrolled_at]
    try:
        cohort = validate_tables(patients, events, now=now + FUTURE_SKEW)
    except ContractError as error:
        problems += _contract_problems(error.problems, rows, owner, position, locate)
    if problems:
        return problems
    times = pd.to_datetime(pd.Series([as_of[i] for i in rows]), utc=True).astype("datetime64[us, UTC]")
    as_of_frame = pd.DataFrame({"patient_id": keys, "as_of": times})
    features = compute_features(cohort.patients, cohort.events, as_of_frame, config=model.feature_config)
    X[rows] = model_matrix(features, model.feature_names)
    return []


def feature_matrix(items: Sequence[PatientIn], model: LoadedModel, now: datetime, locate: Locate,
                   feature_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[datetime]]:
    """The model's feature matrix for request items (row per item) and their as-of times. `feature_names` are
    the request's, naming the `values` of items that send them (a parsed batch carries them in its blocks).

    Raises InputProblems naming every field that breaks a rule.
    """
    as_of = _as_of(items, now, locate)
    X = np.full((len(items), len(model.feature_names)), np.nan)
    raw = [i for i, item in enumerate(items) if not item.sends_features]
    problems = _given_features(items, model, X, locate, feature_names) if len(raw) < len(items) else []
    if raw and len(raw) < _TABLE_PATIENTS:
        slow = []
        for i in raw:
            row = _raw_one(items[i], as_of[i], model, now)
            if row is None:
                slow.append(i)
            else:
                X[i] = row
        raw = slow
    if raw:
        problems += _raw_features(items, raw, as_of, model, X, now, locate)
    if problems:
        raise InputProblems(problems)
    return X, as_of
