"""The parse stage's clock_ms: the rows that go on to the window stage give its watermark the same
values as every row would have (streamdrift.udfs.batch.clock_column)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from streamdrift.udfs.batch import clock_column


def _as_bigint(clock: np.ndarray) -> list[int | None]:
    """The column as Flink gets it: PyFlink's conversion of a pandas column to Arrow BIGINT."""
    s = pd.Series(clock)
    return pa.Array.from_pandas(s, mask=s.isnull(), type=pa.int64()).to_pylist()

BATCHES = st.lists(st.lists(st.tuples(st.integers(0, 10**13), st.booleans()), min_size=0, max_size=60),
                   min_size=1, max_size=5)


def _watermarks(rows: list[int], disorder: int) -> list[int]:
    """A bounded-disorder watermark generator's value after each row (Flink's: newest - disorder)."""
    newest, out = -(2**62), []
    for t in rows:
        newest = max(newest, t)
        out.append(newest - disorder)
    return out


@given(BATCHES, st.integers(0, 10_000))
def test_the_watermark_read_from_the_kept_rows_is_the_one_every_row_gives(batches, disorder):
    every, kept = [], []  # (watermark, position in the stream) after each row read
    position = 0
    for batch in batches:
        event_ms = np.array([t for t, _ in batch], dtype=np.int64)
        to_windows = np.array([w for _, w in batch], dtype=bool)
        clock = _as_bigint(clock_column(event_ms, to_windows))
        assert len(clock) == len(batch)
        for i, (t, w) in enumerate(batch):
            every.append((t, position + i))
            if clock[i] is not None:
                kept.append((clock[i], position + i))
            else:
                assert not w and i != len(batch) - 1  # a row for the window stage, or the batch's last, has one
        position += len(batch)
    all_marks = _watermarks([t for t, _ in every], disorder)
    kept_marks = _watermarks([c for c, _ in kept], disorder)
    # where the window stage reads a row, its watermark is what all rows up to there make it
    assert kept_marks == [all_marks[p] for _, p in kept]
    # and after each batch it is where every row leaves it
    ends = np.cumsum([len(b) for b in batches]) - 1
    for end in ends[[len(b) > 0 for b in batches]]:
        at = max(i for i, (_, p) in enumerate(kept) if p <= end)
        assert kept_marks[at] == all_marks[end]


def test_by_hand():
    clock = _as_bigint(clock_column(np.array([100, 300, 200, 0, 250]), np.array([True, False, False, True, False])))
    assert clock == [100, None, None, 300, 300]  # a dead letter (time 0) keeps the newest time seen


def test_the_latest_epoch_ms_crosses_exactly():
    latest = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the newest time the input contract accepts
    assert _as_bigint(clock_column(np.array([latest - 1, latest]), np.array([True, False]))) == [latest - 1, latest]
