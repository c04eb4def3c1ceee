"""The window stage's state layout: every entry of a group of endpoints' windows in one map
state, keyed by (window start, slot, endpoint id) in one string; the group of an endpoint."""

from hypothesis import given
from hypothesis import strategies as st

from streamdrift.operators.windows import (
    COMPACT_EVERY, GROUPS, OPENED_LATE, EndpointWindows, WindowMeta, WindowSlots, endpoint_group, pack_meta,
    unpack_meta)

# any window start an event time can give (ms since 1970, either side)
STARTS = st.integers(-(2 ** 62), 2 ** 62 - 1)
SLOTS = st.integers(0, WindowSlots.SLOTS - 1)
INT64 = st.integers(-(2 ** 63), 2 ** 63 - 1)
# endpoint ids as they come: any text, the separator, digits and the empty id included
ENDPOINTS = st.one_of(st.text(), st.text(alphabet="/0123456789-"), st.just(""))


@given(ENDPOINTS, STARTS, SLOTS)
def test_a_key_gives_back_its_endpoint_window_and_slot(endpoint, start, slot):
    assert WindowSlots.parse(WindowSlots.key(endpoint, start, slot)) == (endpoint, start, slot)


@given(ENDPOINTS, STARTS, SLOTS, ENDPOINTS, STARTS, SLOTS)
def test_different_windows_or_slots_never_share_a_key(e1, a, slot_a, e2, b, slot_b):
    if (e1, a, slot_a) != (e2, b, slot_b):
        assert WindowSlots.key(e1, a, slot_a) != WindowSlots.key(e2, b, slot_b)


def test_endpoints_spread_over_every_group_evenly():
    counts = {}
    for i in range(25_600):
        group = endpoint_group(f"endpoint-{i}")
        counts[group] = counts.get(group, 0) + 1
    assert len(counts) == GROUPS
    # 100 per group on average; a uniform hash stays within ±50 % for every group (binomial σ ≈ 10)
    assert 50 < min(counts.values()) and max(counts.values()) < 150


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
LATENESS = st.integers(0, 10 ** 8)  # 0: the window stays after its firing, for a partial the watermark meets there


@given(WINDOWS, LATENESS, st.integers(-(2 ** 40), 2 ** 40))
def test_a_window_leaves_the_state_within_a_window_after_its_lateness_and_never_as_windows_fire(window, lateness, k):
    stage = EndpointWindows(None, window, lateness, 0, max_disorder_ms=0)
    start = k * window
    lateness_end = start + window - 1 + lateness
    expiry = stage._expiry(start)
    assert lateness_end < expiry <= lateness_end + window
    # windows fire at start + window - 1 for every start k * window: never the expiry's time
    assert (expiry - (window - 1)) % window != 0
    # the timer at the expiry finds that window, and no other window expires then
    assert stage._expiring(expiry) == start
    assert stage._expiry(start + window) != expiry and stage._expiry(start - window) != expiry
