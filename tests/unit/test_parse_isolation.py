"""A fault of ours that one record triggers costs that record only, with the job's event clock too
(streamdrift.udfs.batch.aggregate_isolated as the parse stage calls it): the batch is aggregated
record by record, the record that still fails becomes a dead letter with the reason, and every
other record is counted as usual."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.udfs.batch import EventClock, aggregate_isolated
from streamdrift.udfs.catalog import EndpointCatalog

T0 = 1_764_158_400_000  # a window start (ms)
STATS = {"x": {"count": 4, "hist": [[2, 2], [0.0, 1.0, 2.0]]}}


class FailsFor(EndpointCatalog):
    """A catalog whose lookups of one endpoint raise: a fault of ours, not of the record."""

    def columns(self, endpoint_id):
        if endpoint_id == "trips-us":
            raise RuntimeError("lookup failed")
        return super().columns(endpoint_id)


def _catalog():
    return FailsFor(lambda: [{"endpoint_id": e, "feature_names": ["x"], "feature_stats": STATS}
                             for e in ("ep1", "ep2", "trips-us")])


def _record(kind: str, i: int) -> bytes:
    if kind == "garbage":
        return b"not json"
    endpoint = {"good": "ep1" if i % 2 else "ep2", "fault": "trips-us"}[kind]
    return json.dumps({"endpoint_id": endpoint, "timestamp": T0 + i, "inputs": [[0.5], [1.5]]}).encode()


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.ERROR)  # the fallback logs the batch's failure with its traceback
    yield
    logging.disable(logging.NOTSET)


def test_the_record_that_triggers_a_fault_is_a_dead_letter_and_the_others_count():
    payloads = [_record("good", 1), _record("fault", 2), _record("good", 3), _record("garbage", 4)]
    clock = EventClock(window_ms=60_000, allowed_lateness_ms=60_000, max_disorder_ms=5_000)
    batch = aggregate_isolated(payloads, _catalog(), 60_000, sample_size=10, clock=clock)
    reasons = dict((i, letter.reason) for i, letter in batch.dead)
    assert sorted(reasons) == [1, 3]
    assert reasons[1] == "the parse stage failed on this record: RuntimeError: lookup failed"
    assert sum(p.aggregate.rows for p in batch.partials) == 4  # two records of two rows each
    assert batch.late.tolist() == [False] * 4
    assert batch.endpoint_ids == ["ep1", None, "ep1", None]
    assert batch.timestamps.tolist() == [T0 + 1, 0, T0 + 3, 0]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["good", "fault", "garbage"]), min_size=1, max_size=12), st.booleans())
def test_every_record_is_counted_once_whatever_fails(kinds, with_clock):
    payloads = [_record(k, i) for i, k in enumerate(kinds)]
    clock = EventClock(window_ms=60_000, allowed_lateness_ms=60_000, max_disorder_ms=5_000) if with_clock else None
    batch = aggregate_isolated(payloads, _catalog(), 60_000, sample_size=10, clock=clock)
    dead = sorted(i for i, _ in batch.dead)
    assert dead == [i for i, k in enumerate(kinds) if k != "good"]
    assert sum(p.aggregate.rows for p in batch.partials) == 2 * kinds.count("good")
    n = len(kinds)
    assert len(batch.endpoint_ids) == len(batch.request_ids) == len(batch.errors) == batch.timestamps.size == n
    if with_clock:
        assert batch.late.shape == (n,) and not batch.late.any()
    good = np.array([k == "good" for k in kinds])
    assert (batch.timestamps[good] > 0).all()
