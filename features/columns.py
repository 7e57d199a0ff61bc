"""Columns of the input tables as the arrays pandas stores them, read without building a Series each.

`frame[name]` builds a Series (an index view, copy-on-write references, metadata), about 10 µs a column
in pandas 3: for one patient, with some twenty columns read per call, that was the largest part of
`compute_features`' set-up. The feature code only reads its inputs, so it takes the stored arrays.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray


class OneRow:
    """One row of a table given as its values (column name -> scalar), read like a one-row DataFrame by
    `column`: `len()` is 1 and `columns` holds the names. A value becomes the one-element array a
    DataFrame column of it would hold: text (and None) as objects, numbers and booleans as numpy's own.
    Building a one-row DataFrame costs about a millisecond; this costs microseconds."""

    def __init__(self, values: Mapping[str, object]):
        self.columns = values.keys()
        self._values = values

    def __len__(self) -> int:
        return 1

    def array(self, name: str) -> np.ndarray:
        value = self._values[name]
        if value is None or isinstance(value, str):
            return np.array([value], dtype=object)
        return np.array([value])

    def values(self, name: str) -> list[object]:
        """The column's values as a list: what `array(name).tolist()` gives, without the array for text."""
        value = self._values[name]
        return [value] if value is None or isinstance(value, str) else self.array(name).tolist()


def column(frame: pd.DataFrame | OneRow, name: str) -> np.ndarray | ExtensionArray:
    """Column `name` of `frame` as stored: a read-only numpy array, or the column's ExtensionArray.

    Not a copy: the frame's own data, to read and never to write. KeyError if the column is absent.
    """
    if isinstance(frame, OneRow):
        return frame.array(name)
    return _stored(frame, name, frame.columns.get_loc(name))


def optional_column(frame: pd.DataFrame | OneRow, name: str) -> np.ndarray | ExtensionArray | None:
    """`column(frame, name)`, or None when `frame` has no column `name`."""
    if isinstance(frame, OneRow):
        return frame.array(name) if name in frame.columns else None
    try:  # one look-up of the name, not a membership test and then another
        where = frame.columns.get_loc(name)
    except KeyError:
        return None
    return _stored(frame, name, where)


def _stored(frame: pd.DataFrame, name: str, where: int | slice | np.ndarray) -> np.ndarray | ExtensionArray:
    if not isinstance(where, (int, np.integer)):  # a slice or mask: the name is repeated
        raise ValueError(f"column {name!r} appears more than once")
    # pandas' own accessor for reading a column's array (private, documented there as read-only).
    values = frame._get_column_array(where)
    if isinstance(values, np.ndarray):
        values = values.view()
        values.flags.writeable = False
    return values


# pandas' nullable numbers and booleans: their values and a mask of the missing ones.
_MASKED = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)


def floats(values: np.ndarray | ExtensionArray) -> np.ndarray:
    """float64 values with NaN where missing: what `Series.to_numpy(dtype=float64, na_value=nan)` gives."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "biuf":  # nothing to fill: NaN is already float's missing value
            return np.asarray(values, dtype=np.float64)
        values = pd.arrays.NumpyExtensionArray(values)
    elif isinstance(values, _MASKED):
        # The same as to_numpy, read from the arrays pandas keeps (private, stable since pandas 1.0): to_numpy
        # checks and a warnings context cost ten times as much for one patient.
        out = values._data.astype(np.float64)
        out[values._mask] = np.nan
        return out
    return values.to_numpy(dtype=np.float64, na_value=np.nan)
