"""The job's counters as Flink metrics (and so for Prometheus, see ``streamdrift.jobs.flink_env.prometheus_reporter``).

PyFlink registers a Python counter with Flink only once a bundle has updated it: a counter nothing
has incremented yet (no store refused a window) would be missing from the reporters instead of
showing 0. :class:`ShowOnce` makes them exist from the operator's first element on.
"""

from __future__ import annotations


class ShowOnce:
    """``show = ShowOnce(counter, ...)`` in ``open``; ``show()`` at each element increments every
    counter by 0 the first time (then does nothing), so that each is reported from then on."""

    __slots__ = ("_counters",)

    def __init__(self, *counters):
        self._counters = counters

    def __call__(self) -> None:
        if self._counters:
            for counter in self._counters:
                counter.inc(0)
            self._counters = ()
