"""The feature values and events request items send, read into arrays once per request.

The range checks (bounds.py, in the request guard) and the model's matrix (inputs.py, in the endpoint) both
need every sent value as a float. Reading 67 values from each of a thousand dicts costs more than either
check, so it is done once, when the request is parsed (schemas.validate_json): items that send the same names
in the same order (a platform sends the same names in every item) share one block, a float array with a row
per item (NaN: not known); items that send `values` (a list in the order of the request's `feature_names`,
the names sent once) share one block of those names. The request's item list becomes a `SentItems`, a list
that carries those blocks to the guard and on to the endpoint (BentoML hands the endpoint the very list the
guard validated), so no item needs state of its own. A plain list (one item to explain, the warm-up) is read when asked.

An item's events are read the same way, once: their times, type codes and values (`SentEvents`, kept by the
item, `PatientIn.sent_events`), for the guard's range checks and then for the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from features.event_index import TYPE_CODES, aware_micros_each


@dataclass(frozen=True, slots=True, eq=False)
class SentEvents:
    """One item's events as arrays, in the order sent."""

    times: np.ndarray  # int64 microseconds since the epoch (UTC)
    codes: np.ndarray  # int8 type codes: positions in features.event_index.TYPES
    values: np.ndarray  # float64, NaN where no value was sent


def read_events(events: Sequence) -> SentEvents:
    """The events (schemas.Event) of one item as arrays."""
    n = len(events)
    # List comprehensions, not generators: Python runs them in line instead of resuming a generator per event.
    return SentEvents(aware_micros_each([e.timestamp for e in events]),
                      np.fromiter([TYPE_CODES[e.event_type] for e in events], dtype=np.int8, count=n),
                      np.fromiter([np.nan if e.value is None else e.value for e in events], dtype=np.float64, count=n))


@dataclass(slots=True, eq=False)
class SentBlock:
    """The values of items that send the same feature names in the same order: one row per item.

    `shared` is True for the block of the items that send `values`: their names are the request's
    `feature_names`, sent once (a problem with a name is the request's, not each item's).
    """

    names: tuple[str, ...]
    values: np.ndarray
    shared: bool = False


@dataclass(slots=True, eq=False)
class SentGroup:
    """The items of one request that share a block: their positions in the request and rows in the block."""

    block: SentBlock
    positions: list[int]
    rows: list[int]


class SentItems(list):
    """A request's items (PatientIn) with their sent feature values read into blocks (`groups`)."""

    __slots__ = ("groups",)

    def take(self, positions: Sequence[int]) -> SentItems:
        """The items at `positions` (in that order), keeping their blocks."""
        where = {p: k for k, p in enumerate(positions)}
        kept = SentItems(self[p] for p in positions)
        kept.groups = []
        for group in self.groups:
            pairs = [(where[p], row) for p, row in zip(group.positions, group.rows) if p in where]
            if pairs:
                kept.groups.append(SentGroup(group.block, [p for p, _ in pairs], [row for _, row in pairs]))
        return kept


def read_sent(items: Sequence, feature_names: Sequence[str] | None = None) -> SentItems:
    """`items` as a SentItems: the sent features of every feature-bearing item read into blocks (the items that
    send `values` into one block, named by the request's `feature_names`)."""
    by_names: dict[tuple[str, ...], list[int]] = {}
    by_position: list[int] = []
    last: list[str] | None = None
    for position, item in enumerate(items):
        features = item.features
        if features is None:
            if item.values is not None:
                by_position.append(position)
            continue
        names = list(features)
        if names != last:  # consecutive items mostly send the same names: a list compare, not a tuple's hash
            members = by_names.setdefault(tuple(names), [])
            last = names
        members.append(position)
    out = SentItems(items)
    out.groups = []
    for names, positions in by_names.items():
        out.groups.append(_group(names, [items[p].features.values() for p in positions], positions))
    if by_position:
        if feature_names is None:  # (schemas.validate_json refuses values without names)
            raise ValueError("items send `values` but no feature_names name them")
        out.groups.append(_group(tuple(feature_names), [items[p].values for p in by_position], by_position,
                                 shared=True))
    return out


def _group(names: tuple[str, ...], rows: list, positions: list[int], shared: bool = False) -> SentGroup:
    """The items at `positions` as one block: `rows` are their values, each in the order of `names`."""
    # One flat list is read faster than a list per item; numpy reads None (not known) as NaN.
    values = np.array(list(chain.from_iterable(rows)), dtype=np.float64).reshape(len(positions), len(names))
    return SentGroup(SentBlock(names, values, shared), positions, list(range(len(positions))))


def sent_groups(items: Sequence, feature_names: Sequence[str] | None = None) -> list[SentGroup]:
    """The feature-bearing items of a request (PatientIn) by block: read at parsing, or now for a plain list
    (whose items that send `values` need the request's `feature_names`)."""
    return items.groups if isinstance(items, SentItems) else read_sent(items, feature_names).groups
