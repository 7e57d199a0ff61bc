"""The feature values request items send, read into arrays once per request.

The range checks (bounds.py, in the request guard) and the model's matrix (inputs.py, in the endpoint) both
need every sent value as a float. Reading 67 values from each of a thousand dicts costs more than either
check, so it is done once: items that send the same names in the same order (a platform sends the same
names in every item) share one block, a float array with a row per item (NaN: not known), and each item
remembers its block and row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(slots=True, eq=False)
class SentBlock:
    """The values of items that send the same feature names in the same order: one row per item."""

    names: tuple[str, ...]
    values: np.ndarray


@dataclass(slots=True, eq=False)
class SentGroup:
    """The items of one request that share a block: their positions in the request and rows in the block."""

    block: SentBlock
    positions: list[int]
    rows: list[int]


def sent_groups(items: Sequence) -> list[SentGroup]:
    """The feature-bearing items of a request (PatientIn) by block, reading values not read before."""
    # Each item's (block, row) is kept in its private attribute `_sent`, read through `__pydantic_private__`
    # (plain attribute access to a private attribute goes through pydantic's __getattr__, a microsecond each).
    unread: dict[tuple[str, ...], list] = {}
    for item in items:
        if item.features is not None and item.__pydantic_private__["_sent"] is None:
            unread.setdefault(tuple(item.features), []).append(item)
    for names, members in unread.items():
        # numpy reads None (not known) as NaN.
        block = SentBlock(names, np.array([list(m.features.values()) for m in members], dtype=np.float64)
                          .reshape(len(members), len(names)))
        for row, member in enumerate(members):
            member.__pydantic_private__["_sent"] = (block, row)
    groups: dict[int, SentGroup] = {}
    for position, item in enumerate(items):
        if item.features is None:
            continue
        block, row = item.__pydantic_private__["_sent"]
        group = groups.get(id(block))
        if group is None:
            group = groups[id(block)] = SentGroup(block, [], [])
        group.positions.append(position)
        group.rows.append(row)
    return list(groups.values())
