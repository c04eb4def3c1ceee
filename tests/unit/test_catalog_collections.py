"""Each stage of the job takes its loaded catalog out of the cyclic garbage collector's generations
at ``open`` (``operators.catalog.keep_out_of_collections``): a full collection must not walk
10,000 endpoints' references (seconds of a whole Python worker at that scale). Checked on
CPython's own bookkeeping: ``gc.get_objects()`` lists the objects collections walk, frozen ones
are not among them. Flink's runtime contexts are stand-ins here (no Flink runs)."""

from __future__ import annotations

import gc
import weakref

import pytest

from streamdrift.operators.monitor import RunApplications, WriteOutputs
from streamdrift.operators.parse import ParseRecords
from streamdrift.operators.windows import EndpointWindows
from streamdrift.udfs.applications import HistogramDataDriftApplication
from streamdrift.udfs.catalog import EndpointCatalog

WINDOW = 60_000


def _endpoints(n: int, start: int = 0) -> list[dict]:
    out = []
    for i in range(start, start + n):
        stats = {f"f{j}": {"count": 4, "hist": [[1, 3], [0.0, 1.0, 2.0]]} for j in range(3)}
        out.append({"endpoint_id": f"ep{i}", "project": "p", "feature_names": list(stats), "feature_stats": stats})
    return out


def _walked(objects) -> list:
    """Those of ``objects`` that the cyclic collector's generations hold (by identity)."""
    tracked = {id(o) for o in gc.get_objects()}
    return [o for o in objects if id(o) in tracked]


def _containers(endpoints: list[dict]) -> list:
    return [*endpoints, *(e["feature_stats"] for e in endpoints),
            *(column for e in endpoints for column in e["feature_stats"].values())]


class _Metrics:
    def counter(self, name):
        return type("Counter", (), {"inc": lambda self, n=1: None})()

    def gauge(self, name, fn):
        return None


class _State:
    def __init__(self):
        self.value_ = None

    def value(self):
        return self.value_


class _RuntimeContext:
    """What the stages' ``open`` asks of Flink's runtime context (PyFlink's ``RuntimeContext``)."""

    def get_map_state(self, descriptor):
        return {}

    def get_list_state(self, descriptor):
        return []

    def get_state(self, descriptor):
        return _State()

    def get_metrics_group(self):
        return _Metrics()

    def get_metric_group(self):  # the Table API's FunctionContext
        return _Metrics()

    def get_index_of_this_subtask(self):
        return 0

    def get_number_of_parallel_subtasks(self):
        return 1


@pytest.fixture(autouse=True)
def _thresholds_as_they_were():
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)  # the parse stage tunes them for a worker process (conftest unfreezes)


def test_a_plain_catalog_leaves_its_references_to_the_collector():
    endpoints = _endpoints(20)
    EndpointCatalog(lambda: endpoints).refresh()
    assert len(_walked(_containers(endpoints))) == len(_containers(endpoints))  # what a stage must not leave


def test_the_parse_stage_takes_its_catalog_out_of_the_collections_at_open():
    stage = ParseRecords(lambda: _endpoints(20), WINDOW, sample_size=10)  # records made by the load itself
    stage.open(_RuntimeContext())
    loaded = [stage.catalog.record(f"ep{i}") for i in range(20)]
    assert _walked(_containers(loaded)) == []
    assert loaded[7]["feature_stats"]["f1"]["hist"] == [[1, 3], [0.0, 1.0, 2.0]]  # read as loaded


def test_the_window_stage_takes_its_catalog_out_of_the_collections_at_open():
    stage = EndpointWindows(lambda: _endpoints(20), WINDOW, WINDOW, 5_000, max_disorder_ms=0)
    stage.open(_RuntimeContext())
    loaded = [stage.catalog.record(f"ep{i}") for i in range(20)]
    assert _walked(_containers(loaded)) == []


def test_the_writer_takes_its_catalog_and_reference_plans_out_of_the_collections_at_open(tmp_path):
    from streamdrift.connectors import job_io

    tsdb, store = f"sqlite:///{tmp_path}/tsdb.sqlite", f"sqlite:///{tmp_path}/store.sqlite"
    applications = RunApplications(lambda: _endpoints(20), lambda: [HistogramDataDriftApplication()], "p")
    writer = WriteOutputs(lambda: job_io.StoreWriter(tsdb, store), applications, writer_keys=[0])
    writer.open(_RuntimeContext())
    try:
        loaded = [applications.catalog.record(f"ep{i}") for i in range(20)]
        assert _walked(_containers(loaded)) == []
        plans = [p for p in gc.get_objects() if type(p).__name__ == "ReferencePlan"]
        assert plans == []  # the 20 endpoints' plans were prepared at open, and frozen with the catalog
        app = applications.apps.value[0]
        assert len(app.plans._plans) == 20
    finally:
        writer.close()


def test_a_reload_after_open_freezes_nothing_more_so_cyclic_garbage_made_meanwhile_is_still_collected():
    loads = [_endpoints(5)]
    stage = EndpointWindows(lambda: loads[-1], WINDOW, WINDOW, 5_000, max_disorder_ms=0)
    stage.open(_RuntimeContext())

    class Cycle:
        pass

    garbage = Cycle()
    garbage.me = garbage  # alive only through its own reference: only the cyclic collector frees it
    gone = weakref.ref(garbage)
    loads.append(_endpoints(8))  # an endpoint registered: new records, reloaded
    stage.catalog.refresh(force=True)
    assert stage.catalog.record("ep7") is loads[-1][7]
    del garbage
    gc.collect()
    assert gone() is None
