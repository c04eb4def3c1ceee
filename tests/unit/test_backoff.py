"""Waiting out a store that is down: the waits double from 0.5 s up to the cap, every retry is told,
and an error that waiting cannot cure is raised at once."""

from __future__ import annotations

import pytest

from streamdrift.connectors.errors import backoff_delays, is_transient, wait_out


def test_the_waits_double_up_to_the_cap():
    delays = backoff_delays(0.25, 5.0)
    assert [next(delays) for _ in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_a_transient_error_is_waited_out_and_a_permanent_one_raised_at_once():
    assert is_transient(ConnectionRefusedError(111, "Connection refused"))
    calls, slept, told = [], [], []

    def flaky():
        calls.append(1)
        if len(calls) <= 5:
            raise ConnectionRefusedError(111, "Connection refused")
        return "written"

    assert wait_out(flaky, max_backoff_s=3.0, on_retry=lambda exc, d: told.append(d), sleep=slept.append) == "written"
    assert len(calls) == 6 and slept == told == [0.5, 1.0, 2.0, 3.0, 3.0]

    def refused():
        calls.append(1)
        raise ValueError("Data too long for column 'x'")

    calls.clear(), slept.clear()
    with pytest.raises(ValueError, match="too long"):
        wait_out(refused, sleep=slept.append)
    assert len(calls) == 1 and slept == []
