"""Checking contract tables against the data contract and loading a cohort folder.

Every broken rule becomes a `Problem` naming the file, the column, the rule and the
rows (1-based data row numbers). Problems never carry the offending values: these
are health records.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from config import EventsConfig
from features import parsing
from features.contract import (
    EVENT_COLUMNS,
    PATIENT_COLUMNS,
    VALUE_RULES,
    Cohort,
    Column,
    EventType,
    ValueRule,
)
from features.declaration import declared_columns, declared_rules, rename_to_contract, suggestion
from features.io import TableNotFound, find_table, read_raw_table
from features.parsing import Parsed
from features.problems import (  # noqa: F401 - the report types are part of this module's interface
    ERROR,
    NOTE,
    ROWS_SHOWN,
    ContractError,
    Problem,
    describe_rows,
    errors_in,
    format_report,
)

_EVENT_TYPES = tuple(t.value for t in EventType)
# "now" may be given as ISO text, a datetime or a Timestamp, always with a time zone.
Moment = str | datetime | pd.Timestamp | None


def _at_rows(source: str, column: str | None, rule: str, message: str, mask: np.ndarray) -> list[Problem]:
    """A one-item list with the problem if any row is flagged in `mask`, else empty."""
    if not mask.any():
        return []
    rows = np.flatnonzero(mask)
    shown = tuple(int(r) + 1 for r in rows[:ROWS_SHOWN])
    return [Problem(source, column, rule, message, shown, int(rows.size))]


def _num(x: float) -> str:
    return f"{x:g}"


def _range_text(low: float | None, high: float | None, integer: bool) -> str:
    kind = "a whole number" if integer else "a number"
    if low is not None and high is not None:
        return f"{kind} from {_num(low)} to {_num(high)}"
    if low is not None:
        return f"{kind} of at least {_num(low)}"
    if high is not None:
        return f"{kind} of at most {_num(high)}"
    return kind


def _outside(values: np.ndarray, low, high, integer) -> np.ndarray:
    """Rows whose (finite) value breaks the bounds or is not whole when it must be."""
    with np.errstate(invalid="ignore"):
        bad = np.zeros(values.shape, dtype=bool)
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
        if integer:
            bad |= np.mod(values, 1) != 0
    return bad & ~np.isnan(values)


# --- one table -----------------------------------------------------------------------

# An unknown event type is named only if it looks like a type name, and at most this many are.
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_TYPES_NAMED = 10
_VOCABULARY_MAX = 50
_TIMESTAMP_HELP = "write ISO 8601 with a time zone, e.g. 2025-03-01T09:30:00Z or 2025-03-01T10:30:00+01:00"


def _parse(raw: pd.Series, col: Column) -> Parsed:
    if col.kind == "timestamp":
        return parsing.parse_timestamp(raw)
    if col.kind in ("number", "integer"):
        return parsing.parse_number(raw)
    if col.kind == "boolean":
        return parsing.parse_boolean(raw)
    if col.kind == "category":
        return parsing.parse_category(raw, col.categories)
    return parsing.parse_text(raw)


def _column_problems(p: Parsed, col: Column, source: str) -> list[Problem]:
    name = col.name
    out = []
    if col.required:
        out += _at_rows(source, name, "missing_value", "is empty but required", p.missing)
    if col.kind == "timestamp":
        out += _at_rows(source, name, "bad_timestamp", f"is not a readable timestamp ({_TIMESTAMP_HELP})", p.invalid)
        out += _at_rows(
            source, name, "naive_timestamp",
            "has no time zone, so the instant is unknown: add 'Z' or a UTC offset such as +01:00 "
            "(in Parquet, store a time-zone-aware timestamp)",
            p.naive,
        )
    elif col.kind in ("number", "integer"):
        out += _at_rows(source, name, "not_numeric", "is not a number", p.invalid)
        if col.low is not None or col.high is not None or col.kind == "integer":
            bad = _outside(p.values, col.low, col.high, col.kind == "integer")
            out += _at_rows(source, name, "out_of_range",
                            f"must be {_range_text(col.low, col.high, col.kind == 'integer')}", bad)
    elif col.kind == "boolean":
        out += _at_rows(source, name, "bad_boolean", "must be true/false, yes/no or 1/0", p.invalid)
    elif col.kind == "category" and name == "event_type":
        out += _at_rows(source, name, "unknown_event_type", _unknown_types_message(p.unknown, col.categories),
                        p.invalid)
    elif col.kind == "category":
        out += _at_rows(source, name, "bad_category",
                        f"must be one of {', '.join(col.categories)} (any case)", p.invalid)
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _unknown_types_message(unknown: tuple[tuple[str, int], ...], known: tuple[str, ...]) -> str:
    """Name the unknown event types (vocabulary, not patient values) with their row counts.

    Only values shaped like a type name are named, at most _TYPES_NAMED of them, and none when
    there are so many distinct values that the column is surely not a vocabulary (swapped columns).
    """
    names = [(t, n) for t, n in unknown if _TYPE_NAME.fullmatch(t)] if len(unknown) <= _VOCABULARY_MAX else []
    shown = names[:_TYPES_NAMED]
    parts = [f"'{t}' ({_plural(n, 'row')})" for t, n in shown]
    if len(names) > len(shown):
        parts.append(f"{_plural(len(names) - len(shown), 'more type')} "
                     f"({_plural(sum(n for _, n in names[len(shown):]), 'row')})")
    unnamed = sum(n for _, n in unknown) - sum(n for _, n in names)
    if unnamed:
        parts.append(f"{_plural(unnamed, 'row')} with other values, not shown (not shaped like a type name, "
                     "or too many distinct values to be a vocabulary)")
    return (f"has event types that are not in lapse's vocabulary: {', '.join(parts)}. "
            f"lapse knows {', '.join(known)} (any case); declare each type in the [events] table of lapse.toml "
            "(a suggested declaration follows in the notes; docs/bring-your-own-data.md), or drop those rows")


def _tidy_columns(raw: pd.DataFrame, source: str, contract_names: set[str]) -> tuple[pd.DataFrame, list[Problem]]:
    """Trim spaces and a byte-order mark from column names; refuse repeated names."""
    names = [str(c).strip().lstrip("\ufeff").strip() for c in raw.columns]
    if names != list(raw.columns):
        raw = raw.set_axis(names, axis=1)
    problems = []
    # pandas renames a repeated CSV header "value" to "value.1": report it as the repeat it is.
    for name in raw.columns:
        base, dot, suffix = name.rpartition(".")
        if dot and suffix.isdigit() and base in contract_names:
            problems.append(Problem(source, base, "duplicate_column", "appears more than once in the header"))
    repeated = raw.columns.duplicated()
    if repeated.any():
        for name in dict.fromkeys(raw.columns[repeated]):
            problems.append(Problem(source, name, "duplicate_column", "appears more than once in the header"))
        raw = raw.loc[:, ~repeated]
    return raw, problems


class _Table(NamedTuple):
    """A raw table with its contract columns parsed (values still arrays) and its extra columns named."""

    raw: pd.DataFrame
    parsed: dict[str, Parsed]
    extras: list[str]


def _parse_table(raw: pd.DataFrame, columns: tuple[Column, ...], source: str) -> tuple[_Table, list[Problem]]:
    """Parse every contract column present and report its problems; extra columns are only named."""
    known = {c.name for c in columns}
    raw, problems = _tidy_columns(raw, source, known)
    parsed: dict[str, Parsed] = {}
    present = set(raw.columns)
    if len(raw.columns) == 1 and (sep := next((c for c in ";\t|" if c in raw.columns[0]), None)):
        shown = "a tab" if sep == "\t" else f"'{sep}'"
        problems.append(Problem(source, None, "wrong_separator",
                                f"the header is one column holding {shown}: lapse reads comma-separated CSV"))
    for col in columns:
        if col.name in present:
            parsed[col.name] = _parse(raw[col.name], col)
            problems += _column_problems(parsed[col.name], col, source)
        elif col.required:
            near = next((c for c in raw.columns if c.lower().replace(" ", "_") == col.name), None)
            hint = f" (column '{near}' differs only in case or spaces)" if near else ""
            problems.append(Problem(source, col.name, "missing_column", f"required column is missing{hint}"))
    extras = [c for c in raw.columns if c not in known]
    if extras:
        problems.append(Problem(source, None, "extra_columns",
                                f"extra column(s) carried through unchanged: {', '.join(extras)}", severity=NOTE))
    return _Table(raw, parsed, extras), problems


def _frame(table: _Table, columns: tuple[Column, ...]) -> pd.DataFrame:
    """The canonical frame: contract columns in contract order, then the extra columns as read."""
    data = {c.name: parsing.to_series(table.parsed[c.name]) for c in columns if c.name in table.parsed}
    data.update({c: table.raw[c].reset_index(drop=True) for c in table.extras})
    return pd.DataFrame(data, index=pd.RangeIndex(len(table.raw)))


def _value_problems(types: Parsed, values: Parsed, source: str, declared: EventsConfig) -> list[Problem]:
    """Each event type's rule for `value` (VALUE_RULES, then the declared types'), checked for all rows at once."""
    rules: list[ValueRule] = [VALUE_RULES[EventType(t)] for t in _EVENT_TYPES] + declared_rules(declared)
    names = (*_EVENT_TYPES, *(t.maps_to for t in declared.own_types()))
    # Codes index the rule arrays; the extra last slot (code -1) is "type unknown: no rule".
    codes = types.codes
    required = np.array([r.required for r in rules] + [False])[codes]
    low = np.array([-np.inf if r.low is None else r.low for r in rules] + [-np.inf])[codes]
    high = np.array([np.inf if r.high is None else r.high for r in rules] + [np.inf])[codes]
    v = values.values
    with np.errstate(invalid="ignore"):
        broken = (v < low) | (v > high)
        whole = np.flatnonzero(np.array([r.integer for r in rules] + [False])[codes])
        # An empty optional value (NaN) has no number to be whole or not.
        broken[whole] |= (np.mod(v[whole], 1) != 0) & ~np.isnan(v[whole])
    out = []
    for rule_name, mask in (("missing_value", required & values.missing), ("out_of_range", broken)):
        if not mask.any():
            continue
        for code in np.unique(codes[mask]):
            t, rule = names[code], rules[code]
            what = f"{rule.meaning}, {rule.unit}" if rule.unit else rule.meaning
            if rule_name == "missing_value":
                message = f"is required for {t} events ({what}) but is empty"
            else:
                message = f"{t} values must be {_range_text(rule.low, rule.high, rule.integer)} ({what})"
            out += _at_rows(source, "value", rule_name, message, mask & (codes == code))
    return out


def as_utc(now: Moment = None) -> pd.Timestamp:
    """A time-zone-aware moment as a UTC Timestamp (the current time when None); naive is refused."""
    if now is None:
        return pd.Timestamp.now(tz="UTC")
    ts = pd.Timestamp(now)
    if ts.tzinfo is None:
        raise ValueError("now must carry a time zone (e.g. 2025-06-01T00:00:00Z)")
    return ts.tz_convert("UTC")


class _PatientIndex(NamedTuple):
    """Distinct usable patient ids, each one's first row, and each row's id code (-1 where none)."""

    ids: pa.Array
    first_row: np.ndarray
    row_codes: np.ndarray


def _patient_index(ids: Parsed) -> _PatientIndex:
    enc = pc.dictionary_encode(ids.values)
    codes = parsing.as_codes(enc.indices)
    first_row = np.full(len(enc.dictionary), -1, dtype=np.int64)
    rows = np.flatnonzero(codes >= 0)
    # Assigning in reverse leaves each id's first row in place.
    first_row[codes[rows[::-1]]] = rows[::-1]
    return _PatientIndex(enc.dictionary, first_row, codes)


def _link_problems(
    index: _PatientIndex, pp: dict[str, Parsed], ep: dict[str, Parsed], patients_source: str, events_source: str
) -> list[Problem]:
    """Events must belong to a known patient and not precede that patient's enrolment."""
    if "patient_id" not in ep:
        return []
    event_ids = ep["patient_id"]
    codes = parsing.as_codes(pc.index_in(event_ids.values, value_set=index.ids))
    known = codes >= 0
    out = _at_rows(events_source, "patient_id", "unknown_patient",
                   f"names a patient who is not in {patients_source}", ~event_ids.missing & ~known)
    if "enrolled_at" in pp and "timestamp" in ep:
        enrolled = pp["enrolled_at"].values[index.first_row]
        start = np.append(enrolled, np.datetime64("NaT", "us"))[codes]
        out += _at_rows(events_source, "timestamp", "before_enrolment",
                        f"is before the patient's enrolment (enrolled_at in {patients_source})",
                        known & (ep["timestamp"].values < start))
    return out


def _future_problems(parsed: dict[str, Parsed], column: str, source: str, now: pd.Timestamp) -> list[Problem]:
    if column not in parsed:
        return []
    limit = now.tz_convert(None).as_unit("us").to_datetime64()
    return _at_rows(source, column, "in_future",
                    f"is in the future (after {now.isoformat(timespec='seconds')})", parsed[column].values > limit)


def _check(
    patients: pd.DataFrame | None,
    events: pd.DataFrame | None,
    patients_source: str,
    events_source: str,
    now: Moment,
    declared: EventsConfig = EventsConfig(),
) -> tuple[_Table | None, _Table | None, list[Problem]]:
    """Parse both tables and collect every problem, within and across them.

    `declared` (the [events] table) renames the program's columns and event types to the contract's first, and
    adds the program's own types to the vocabulary.
    """
    now = as_utc(now)
    patients, events = rename_to_contract(patients, events, declared)
    event_columns = declared_columns(EVENT_COLUMNS, declared)
    problems: list[Problem] = []
    pt = et = index = None
    if patients is not None:
        pt, found = _parse_table(patients, PATIENT_COLUMNS, patients_source)
        problems += found
        if len(pt.raw) == 0:
            problems.append(Problem(patients_source, None, "empty_table", "has no rows: a cohort needs patients"))
        if "patient_id" in pt.parsed:
            index = _patient_index(pt.parsed["patient_id"])
            repeated = parsing.spread(np.bincount(index.row_codes[index.row_codes >= 0],
                                                   minlength=len(index.ids)) > 1, index.row_codes, False)
            problems += _at_rows(patients_source, "patient_id", "duplicate_patient",
                                 "appears on more than one row (one row per patient)", repeated)
        problems += _future_problems(pt.parsed, "enrolled_at", patients_source, now)
    if events is not None:
        et, found = _parse_table(events, event_columns, events_source)
        problems += found
        if "value" not in et.parsed:
            n = len(et.raw)
            et.parsed["value"] = Parsed("number", np.full(n, np.nan), np.ones(n, dtype=bool), np.zeros(n, dtype=bool))
        if "event_type" in et.parsed:
            problems += _value_problems(et.parsed["event_type"], et.parsed["value"], events_source, declared)
            suggested = suggestion(et.raw["event_type"], et.parsed["event_type"], et.parsed["value"])
            if suggested:
                problems.append(Problem(events_source, "event_type", "declaration", suggested, severity=NOTE))
        problems += _future_problems(et.parsed, "timestamp", events_source, now)
    if index is not None and et is not None:
        problems += _link_problems(index, pt.parsed, et.parsed, patients_source, events_source)
    return pt, et, problems


# --- public entry points ---------------------------------------------------------------


def check_tables(
    patients: pd.DataFrame | None,
    events: pd.DataFrame | None,
    patients_source: str = "patients",
    events_source: str = "events",
    now: Moment = None,
    declared: EventsConfig = EventsConfig(),
) -> list[Problem]:
    """Every contract problem (errors and notes) in frames already in memory; None skips a table."""
    return _check(patients, events, patients_source, events_source, now, declared)[2]


def validate_tables(
    patients: pd.DataFrame,
    events: pd.DataFrame,
    patients_source: str = "patients",
    events_source: str = "events",
    now: Moment = None,
    declared: EventsConfig = EventsConfig(),
) -> Cohort:
    """The canonical Cohort from raw frames in memory, or ContractError listing every problem."""
    pt, et, problems = _check(patients, events, patients_source, events_source, now, declared)
    if errors_in(problems):
        raise ContractError(problems)
    return Cohort(_frame(pt, PATIENT_COLUMNS), _frame(et, declared_columns(EVENT_COLUMNS, declared)))


def parse_table(raw: pd.DataFrame, columns: tuple[Column, ...], source: str) -> tuple[pd.DataFrame, list[Problem]]:
    """Any table against its columns (e.g. the external labels): the canonical frame and every problem."""
    table, problems = _parse_table(raw, columns, source)
    return _frame(table, columns), problems


def read_failure(path: Path, exc: Exception) -> str:
    kind = "CSV" if path.suffix == ".csv" else "Parquet"
    if isinstance(exc, pd.errors.EmptyDataError):
        return "is empty (not even a header line)"
    if isinstance(exc, UnicodeDecodeError):
        return "is not UTF-8 text: save the CSV as UTF-8"
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return f"could not be read as {kind} ({detail})"


def read_tables(data_dir: str | Path) -> tuple[dict[str, tuple[pd.DataFrame, str]], list[Problem]]:
    """Raw patients and events frames of a data folder with their file names, and read problems."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return {}, [Problem(str(data_dir), None, "missing_folder", "is not a folder")]
    found: dict[str, tuple[pd.DataFrame, str]] = {}
    problems = []
    for name in ("patients", "events"):
        try:
            path = find_table(data_dir, name)
        except TableNotFound as exc:
            problems.append(Problem(str(data_dir), None, "missing_table", str(exc).removeprefix(f"{data_dir}: ")))
            continue
        try:
            frame = read_raw_table(path)
        except (OSError, ValueError, pa.ArrowException) as exc:
            problems.append(Problem(str(path), None, "unreadable", read_failure(path, exc)))
            continue
        if path.suffix == ".csv" and not isinstance(frame.index, pd.RangeIndex):
            # pandas turns the surplus leading fields into an index when every row is longer.
            message = "has data rows with more fields than the header line (check separators and quoting)"
            problems.append(Problem(str(path), None, "unreadable", message))
            continue
        found[name] = (frame, str(path))
    return found, problems


def load_cohort(data_dir: str | Path, now: Moment = None, declared: EventsConfig = EventsConfig()) -> Cohort:
    """Read patients and events from `data_dir` into canonical form, or raise ContractError.

    `declared` is the program's [events] table: its column names and event types are read as declared.
    """
    found, problems = read_tables(data_dir)
    patients, p_source = found.get("patients", (None, "patients"))
    events, e_source = found.get("events", (None, "events"))
    pt, et, more = _check(patients, events, p_source, e_source, now, declared)
    problems += more
    if errors_in(problems):
        raise ContractError(problems)
    return Cohort(_frame(pt, PATIENT_COLUMNS), _frame(et, declared_columns(EVENT_COLUMNS, declared)))
