"""The window stage's state layout: every entry of an endpoint's windows in one map state, keyed
by (window start, slot) packed in one LONG."""

from hypothesis import given
from hypothesis import strategies as st

from streamdrift.operators.windows import (
    COMPACT_EVERY, OPENED_LATE, EndpointWindows, WindowMeta, WindowSlots, pack_meta, unpack_meta)

# any window start an event time can give (ms since 1970, either side), with room for the slots
STARTS = st.integers(-(2 ** 58), 2 ** 58 - 1)
SLOTS = st.integers(0, WindowSlots.SLOTS - 1)
INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)


@given(STARTS, SLOTS)
def test_a_key_gives_back_its_window_and_slot_and_fits_a_long(start, slot):
    key = WindowSlots.key(start, slot)
    assert WindowSlots.start(key) == start
    assert key % WindowSlots.SLOTS == slot
    assert -(2 ** 63) <= key < 2 ** 63


@given(STARTS, SLOTS, STARTS, SLOTS)
def test_different_windows_or_slots_never_share_a_key(a, slot_a, b, slot_b):
    if (a, slot_a) != (b, slot_b):
        assert WindowSlots.key(a, slot_a) != WindowSlots.key(b, slot_b)


def test_every_pending_partial_has_its_own_slot():
    slots = {WindowSlots.META, WindowSlots.MERGED} | {WindowSlots.PENDING + i for i in range(COMPACT_EVERY)}
    assert len(slots) == 2 + COMPACT_EVERY
    assert max(slots) < WindowSlots.SLOTS


@given(INT64, st.integers(OPENED_LATE, 2 ** 31 - 1), st.integers(0, COMPACT_EVERY), st.booleans())
def test_meta_round_trips(touched, revision, pending, merged):
    meta = WindowMeta(touched, revision, pending, merged)
    assert unpack_meta(pack_meta(meta)) == meta
    assert unpack_meta(bytearray(pack_meta(meta))) == meta  # as PyFlink may hand a byte array back


WINDOWS = st.integers(2, 10 ** 7)
LATENESS = st.integers(1, 10 ** 8)


@given(WINDOWS, LATENESS, st.integers(-(2 ** 40), 2 ** 40))
def test_a_window_leaves_the_state_within_a_window_after_its_lateness_and_never_as_windows_fire(window, lateness, k):
    stage = EndpointWindows(None, window, lateness, 0)
    start = k * window
    lateness_end = start + window - 1 + lateness
    expiry = stage._expiry(start)
    assert lateness_end < expiry <= lateness_end + window
    # windows fire at start + window - 1 for every start k * window: never the expiry's time
    assert (expiry - (window - 1)) % window != 0
    # the timer at the expiry finds that window, and no other window expires then
    assert stage._expiring(expiry) == start
    assert stage._expiry(start + window) != expiry and stage._expiry(start - window) != expiry


@given(WINDOWS, st.integers(-(2 ** 40), 2 ** 40))
def test_without_lateness_a_window_leaves_the_state_when_it_fires(window, k):
    stage = EndpointWindows(None, window, 0, 0)
    assert stage._expiry(k * window) == k * window + window - 1
