"""The raw rows' hour partitions (connectors/raw_rows.py), computed in the parse stage."""

import datetime as dt

import numpy as np

from streamdrift.connectors.raw_rows import _hours

from streamdrift.udfs.partitions import hour_partitions


def test_hour_partitions_name_each_events_utc_hour():
    rng = np.random.default_rng(1)
    hour = 3_600_000
    times = np.concatenate([rng.integers(0, 4_102_444_800_000, 500),  # 1970-2100
                            np.array([0, hour - 1, hour, 1_700_003_599_999, 1_700_003_600_000])])
    expected = [dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc).strftime("%Y-%m-%d-%H") for t in times.tolist()]
    assert hour_partitions(times).tolist() == expected


def test_hour_partitions_of_early_years_have_four_digit_years():
    assert hour_partitions([-62135596800000, -59011459200000 + 5 * 3_600_000]).tolist() == \
        ["0001-01-01-00", "0100-01-01-05"]


def test_a_windows_hours_are_those_its_events_are_written_under():
    utc = dt.timezone.utc
    start, end = dt.datetime(2024, 1, 1, 10, 30, tzinfo=utc), dt.datetime(2024, 1, 1, 12, 0, tzinfo=utc)
    ms = np.arange(int(start.timestamp() * 1000), int(end.timestamp() * 1000), 60_000)
    assert _hours(start, end) == sorted(set(hour_partitions(ms).tolist())) == ["2024-01-01-10", "2024-01-01-11"]
