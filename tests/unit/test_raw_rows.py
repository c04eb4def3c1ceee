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


def test_a_window_starting_on_a_millisecond_float_seconds_miss_reads_exactly_its_events(tmp_path):
    """2183226373411 ms is 2183226373.4109998 s as a float: a bound read through seconds takes
    the event a millisecond before the window."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from streamdrift.connectors.producer import encode_event
    from streamdrift.connectors.raw_rows import read_window_rows
    from streamdrift.udfs.partitions import shard_of
    from streamdrift.udfs.records import utc_from_ms

    start_ms = 2_183_226_373_411
    assert int(utc_from_ms(start_ms).timestamp() * 1000) == start_ms - 1  # the float miss this is about
    times = [start_ms - 1, start_ms, start_ms + 999, start_ms + 1000]
    payloads = [encode_event("ep", [[float(i)]], timestamp=t) for i, t in enumerate(times)]
    hour = dt.datetime.fromtimestamp(start_ms // 1000, dt.timezone.utc).strftime("%Y-%m-%d-%H")
    directory = tmp_path / f"shard={shard_of('ep')}" / f"hour={hour}"
    directory.mkdir(parents=True)
    pq.write_table(pa.table({"event_ms": times, "request_id": [None] * 4, "latency_us": [None] * 4,
                             "error": [False] * 4, "late": [False] * 4, "payload": payloads,
                             "endpoint_id": ["ep"] * 4}), directory / "part-0.parquet")
    frame = read_window_rows(str(tmp_path), "ep", utc_from_ms(start_ms), utc_from_ms(start_ms + 1000))
    assert [t.value // 1_000_000 for t in frame["timestamp"]] == [start_ms, start_ms + 999]
