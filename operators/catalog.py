"""The endpoint catalog of the job's operators, all sharing one :class:`udfs.catalog.LayoutCache`
per Python worker process: the parse, window and applications stages of a slot run in one
process, and each reference is laid out once there, not once per stage.

Each stage, once its catalog is loaded in ``open``, takes what is alive out of the cyclic garbage
collector's generations (:func:`keep_out_of_collections`): at 10,000 endpoints a worker holds
millions of dicts and lists of references, which a full collection would otherwise walk every
time, pausing the whole worker (figures: tests/benchmarks/README.md)."""

from __future__ import annotations

import gc

from streamdrift.udfs.catalog import EndpointCatalog, LayoutCache

LAYOUTS = LayoutCache()


def keep_out_of_collections() -> None:
    """Move every object alive in this process into the collector's permanent generation
    (:func:`gc.freeze`): full collections no longer walk them. Called once per stage, at the end
    of its ``open`` (the catalog's first load, the writer's reference plans), when what is alive
    is mostly what stays: cyclic garbage frozen with it is never collected, so it is not called
    again for a reload (one that changed records adds those records and the catalog's dicts; the
    loader hands unchanged records back as the same objects)."""
    gc.freeze()


def endpoint_catalog(load_endpoints, refresh_seconds: float = 30.0) -> EndpointCatalog:
    """A catalog over ``load_endpoints`` with the process's shared layouts."""
    return EndpointCatalog(load_endpoints, refresh_seconds, layouts=LAYOUTS)
