"""The TSDB's tables defined once (connectors/tsdb/tables.py) and both backends derived from them."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from streamdrift.connectors.tsdb import tables
from streamdrift.connectors.tsdb import tdengine as td
from streamdrift.connectors.tsdb.base import decode_row, encode_row
from streamdrift.connectors.tsdb.sqlite import SqliteTSDB
from streamdrift.udfs.records import ErrorRecord, FeatureDriftRecord, MetricRecord, PredictionRecord, ResultRecord

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + dt.timedelta(minutes=10)
T1_US = 1704067800 * 10**6  # 2024-01-01 00:10 UTC

RECORDS = [
    ResultRecord("fraud", "ep-1", "app", "drift", 1, 2, 0.5, T0, T1, {"a": [1, 2]}),
    MetricRecord("fraud", "ep-1", "app", "tvd_mean", None, T0, T1),
    PredictionRecord("fraud", "ep-1", T0, T1, 10, 3, 1, 9, 1.5, 1.0, 2.0, 3.0, T0, None, 12.5),
    ErrorRecord("fraud", "ep-1", "app", "mm-app-failed", "boom", T1),
    FeatureDriftRecord("fraud", "ep-1", "app", "年龄", T0, T1, 0.1, 0.2, 0.3, 0.04, False, -0.5, 100, 1000, 0.0),
]


def test_every_record_round_trips_through_its_stored_row():
    for record, table in zip(RECORDS, tables.TABLES):
        row = encode_row(table, record)
        assert row[0] == T1_US  # the row's time first, in microseconds
        assert decode_row(table, row) == record


def test_a_table_that_leaves_a_record_field_out_is_refused():
    with pytest.raises(ValueError, match="metric_name"):
        tables.Table("metrics", MetricRecord, columns=tables.METRICS.columns, tags=tables.METRICS.tags[:-1])


def test_both_backends_lay_out_the_shared_columns_in_the_same_order(tmp_path):
    tsdb = SqliteTSDB(tmp_path / "t.sqlite")
    tsdb.create_schema()
    tsdb.close()
    with sqlite3.connect(tmp_path / "t.sqlite") as conn:
        for table, stable in zip(tables.TABLES, td.SUPERTABLES):
            sqlite_columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table.name})")]
            # SQLite: the series first (its UNIQUE key's order), then the values; TDengine: values, then tags
            assert sqlite_columns == [*stable.tag_names, *stable.column_names]
            assert stable.column_names[0] == table.time_column
    assert [c for c, _ in td.ERRORS.columns] == ["time", "model_error"]
    assert td.ERRORS.tags == (("project", "NCHAR(255)"), ("endpoint_id", "NCHAR(255)"),
                              ("application_name", "VARCHAR(128)"), ("error_type", "NCHAR(255)"))
