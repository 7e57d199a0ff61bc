"""Turning contract-table rows into the JSON a /score request carries."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def json_value(value):
    """One table cell as a JSON value: None for missing, plain numbers and booleans, ISO times."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)
