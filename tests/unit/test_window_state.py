"""The window stage's state layout: every entry of an endpoint's windows in one map state, keyed
by (window start, slot) packed in one LONG."""

from hypothesis import given
from hypothesis import strategies as st

from streamdrift.operators.windows import COMPACT_EVERY, NOT_FIRED, WindowMeta, WindowSlots, pack_meta, unpack_meta

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


@given(INT64, st.integers(NOT_FIRED, 2 ** 31 - 1), st.integers(0, COMPACT_EVERY), st.booleans())
def test_meta_round_trips(touched, revision, pending, merged):
    meta = WindowMeta(touched, revision, pending, merged)
    assert unpack_meta(pack_meta(meta)) == meta
    assert unpack_meta(bytearray(pack_meta(meta))) == meta  # as PyFlink may hand a byte array back
