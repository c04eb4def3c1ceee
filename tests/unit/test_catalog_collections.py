"""The job's endpoint catalog keeps what it loads out of the cyclic garbage collector's
generations (``operators.catalog``): a full collection must not walk 10,000 endpoints' references
(seconds of a whole Python worker at that scale). Checked on CPython's own bookkeeping:
``gc.get_objects()`` lists the objects the collections walk, frozen ones are not among them."""

from __future__ import annotations

import gc

import pytest

from streamdrift.operators.catalog import endpoint_catalog
from streamdrift.udfs.catalog import EndpointCatalog


def _endpoint(i: int) -> dict:
    stats = {f"f{j}": {"count": 4, "hist": [[1, 3], [0.0, 1.0, 2.0]]} for j in range(3)}
    return {"endpoint_id": f"ep{i}", "feature_names": list(stats), "feature_stats": stats}


def _walked(objects) -> list:
    """Those of ``objects`` that the cyclic collector's generations hold (by identity)."""
    tracked = {id(o) for o in gc.get_objects()}
    return [o for o in objects if id(o) in tracked]


@pytest.fixture(autouse=True)
def _unfrozen_after():
    yield
    gc.unfreeze()  # the rest of the test process as it was


def test_a_plain_catalog_leaves_its_references_to_the_collector_as_a_reference():
    endpoints = [_endpoint(i) for i in range(20)]
    catalog = EndpointCatalog(lambda: endpoints)
    catalog.refresh()
    stats = [e["feature_stats"] for e in endpoints]
    assert len(_walked(stats)) == 20  # what the job's catalog must not leave


def test_the_jobs_catalog_takes_its_first_load_out_of_the_collections():
    endpoints = [_endpoint(i) for i in range(20)]
    catalog = endpoint_catalog(lambda: endpoints)
    catalog.refresh()
    inner = [e["feature_stats"][f] for e in endpoints for f in e["feature_stats"]]
    assert _walked([*endpoints, *inner]) == []
    assert catalog.record("ep7")["feature_stats"]["f1"]["hist"] == [[1, 3], [0.0, 1.0, 2.0]]  # still read as loaded


def test_a_reload_that_changed_the_records_is_taken_out_too():
    loads = [[_endpoint(i) for i in range(5)]]
    catalog = endpoint_catalog(lambda: loads[-1], refresh_seconds=3600)
    catalog.refresh()
    loads.append([_endpoint(i) for i in range(8)])  # an endpoint registered: new records
    gc.unfreeze()  # as if the first load had been frozen long ago; what follows is the reload's doing
    catalog.refresh(force=True)
    assert _walked(loads[-1]) == []
    assert catalog.record("ep7") is loads[-1][7]


def test_a_frozen_catalog_is_still_freed_when_dropped():
    import weakref

    class Marker(dict):  # a dict that can be referred to weakly
        pass

    record = Marker(_endpoint(0))
    catalog = endpoint_catalog(lambda: [record])
    catalog.refresh()
    gone = weakref.ref(record)
    del catalog, record
    assert gone() is None  # reference counting frees frozen objects
