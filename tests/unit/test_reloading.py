"""What a running job loads from its stores and loads again: due every refresh_seconds, a failed
reload keeps the last value (and waits a full period again), the first load must work unless the
value is optional."""

from __future__ import annotations

import pytest

from streamdrift.udfs.reloading import Reloading


def _loader(outcomes):
    calls = []

    def load():
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    return load, calls


def test_a_failed_reload_keeps_the_last_value_and_waits_a_period(caplog):
    now = [0.0]
    load, calls = _loader([["a", "b"], ConnectionError("store down"), ["c"], ["d"]])
    values = Reloading(load, refresh_seconds=30, what="endpoints", clock=lambda: now[0])
    assert values.refresh() and values.value == ["a", "b"]
    now[0] = 30
    with caplog.at_level("WARNING", logger="streamdrift.reloading"):
        assert values.refresh() is False
    assert values.value == ["a", "b"] and "reloading the endpoints failed (ConnectionError); keeping the 2" in caplog.text
    now[0] = 59
    assert values.refresh() is False and len(calls) == 2  # not due: 29 s after the failed try
    now[0] = 60
    assert values.refresh() and values.value == ["c"] and len(calls) == 3
    now[0] = 61
    assert values.refresh() is False and values.refresh(force=True)  # forced: loads at once
    assert values.value == ["d"] and len(calls) == 4


def test_the_first_load_must_work_unless_optional():
    load, _ = _loader([ConnectionError("store down")])
    with pytest.raises(ConnectionError):
        Reloading(load, clock=lambda: 0.0).refresh()
    now = [0.0]
    load, calls = _loader([ConnectionError("store down"), ["app"]])
    optional = Reloading(load, refresh_seconds=30, clock=lambda: now[0], required=False, default=[])
    assert optional.refresh() is False and optional.value == [] and not optional.loaded
    now[0] = 29
    assert optional.refresh() is False and len(calls) == 1
    now[0] = 30
    assert optional.refresh() and optional.value == ["app"] and optional.loaded
