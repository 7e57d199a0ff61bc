"""Event times as microseconds: many moments at once give what one moment at a time gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
from pydantic import AwareDatetime, TypeAdapter

from features.event_index import aware_micros, aware_micros_each

_PARSED = TypeAdapter(list[AwareDatetime])  # how a request's times arrive: pydantic's own fixed-offset zones


def _one_at_a_time(moments: list[datetime]) -> np.ndarray:
    return np.array([aware_micros(m) for m in moments], dtype=np.int64)


def test_request_times_in_one_zone_and_in_several():
    utc = _PARSED.validate_json('["2026-03-29T00:30:00Z", "2026-03-29T00:30:00.000001Z", "1969-12-31T23:59:59Z"]')
    assert aware_micros_each(utc).tolist() == [1_774_744_200_000_000, 1_774_744_200_000_001, -1_000_000]
    mixed = _PARSED.validate_json('["2026-03-29T06:00:00+05:30", "2026-03-29T00:30:00Z", '
                                  '"2026-03-28T16:30:00-08:00", "2026-03-29T06:00:00+05:30"]')
    np.testing.assert_array_equal(aware_micros_each(mixed), _one_at_a_time(mixed))
    assert len(set(aware_micros_each(mixed))) == 1  # one instant, written in three zones


def test_a_zone_with_summer_time_is_not_read_as_one_offset():
    paris = ZoneInfo("Europe/Paris")
    moments = [datetime(2026, 1, 15, 12, tzinfo=paris), datetime(2026, 7, 15, 12, tzinfo=paris),
               datetime(2026, 7, 15, 10, tzinfo=timezone.utc)]
    got = aware_micros_each(moments)
    np.testing.assert_array_equal(got, _one_at_a_time(moments))
    assert got[1] == got[2]  # noon in Paris in July is 10:00 UTC
    fixed_first = [datetime(2026, 1, 15, 12, tzinfo=timezone(timedelta(hours=-3))), *moments]
    np.testing.assert_array_equal(aware_micros_each(fixed_first), _one_at_a_time(fixed_first))
    assert aware_micros_each([]).dtype == np.int64 and len(aware_micros_each([])) == 0
