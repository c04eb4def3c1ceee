"""Fixtures for the real local services.

``make test`` starts Kafka, MariaDB and Flink before pytest and stops them after. Run alone, a test
that needs a service starts it here (start is idempotent) and the session stops what it started.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from streamdrift.connectors import local_services

# no per-example deadline: one pause of a loaded 2-core machine (a collection, the scheduler) must
# not fail a property test; their speed is the benchmarks' business
settings.register_profile("streamdrift", deadline=None)
settings.load_profile("streamdrift")


def _service(request, cls):
    service = cls()
    started_here = not service.status().up
    service.start()
    if started_here:
        request.session.config.add_cleanup(service.stop)
    return service


@pytest.fixture(scope="session")
def kafka(request) -> local_services.Kafka:
    return _service(request, local_services.Kafka)


@pytest.fixture(scope="session")
def mysql(request) -> local_services.MariaDB:
    return _service(request, local_services.MariaDB)


@pytest.fixture(scope="session")
def flink(request) -> local_services.Flink:
    return _service(request, local_services.Flink)
