"""Fixtures the unit tests share."""

from __future__ import annotations

import gc

import pytest

from streamdrift.connectors.sql_store import SqlStore


@pytest.fixture()
def store(tmp_path):
    """A SQL store in a SQLite file of the test's own, its schema created."""
    s = SqlStore(f"sqlite:///{tmp_path}/store.sqlite")
    s.create_schema()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _collector_unfrozen_after():
    """The stages' ``open`` freezes the process's objects for a worker (``operators.catalog``);
    the test run collects them as usual afterwards."""
    yield
    gc.unfreeze()
