"""The endpoint catalog of the job's operators, all sharing one :class:`udfs.catalog.LayoutCache`
per Python worker process: the parse, window and applications stages of a slot run in one
process, and each reference is laid out once there, not once per stage."""

from __future__ import annotations

from streamdrift.udfs.catalog import EndpointCatalog, LayoutCache

LAYOUTS = LayoutCache()


def endpoint_catalog(load_endpoints, refresh_seconds: float = 30.0) -> EndpointCatalog:
    """A catalog over ``load_endpoints`` with the process's shared layouts."""
    return EndpointCatalog(load_endpoints, refresh_seconds, layouts=LAYOUTS)
