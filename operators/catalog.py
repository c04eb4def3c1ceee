"""The endpoint catalog of the job's operators, all sharing one :class:`udfs.catalog.LayoutCache`
per Python worker process: the parse, window and applications stages of a slot run in one
process, and each reference is laid out once there, not once per stage.

What a catalog loads is kept out of the cyclic garbage collector's generations
(:func:`keep_out_of_collections`): at 10,000 endpoints a worker holds millions of dicts and lists
of references, and a full collection walks every one of them, pausing the whole worker (its
parse, window and writer stages) for seconds whenever it comes (figures: tests/benchmarks/README.md)."""

from __future__ import annotations

import gc

from streamdrift.udfs.catalog import EndpointCatalog, LayoutCache

LAYOUTS = LayoutCache()


def keep_out_of_collections() -> None:
    """Move every object alive in this process into the collector's permanent generation
    (:func:`gc.freeze`): full collections no longer walk them, reference counting still frees
    them. Called when long-lived data was just built (a catalog load, the applications' reference
    plans); whatever cyclic garbage is alive at that moment is not collected any more, so it is
    not called per record or per window."""
    gc.freeze()


def endpoint_catalog(load_endpoints, refresh_seconds: float = 30.0) -> EndpointCatalog:
    """A catalog over ``load_endpoints`` with the process's shared layouts, each load (the first
    one and each that changed the records) kept out of the collector's generations."""
    return EndpointCatalog(load_endpoints, refresh_seconds, layouts=LAYOUTS, on_load=keep_out_of_collections)
