"""The SQL store's JSON columns keep the text ``json.dumps(value, ensure_ascii=False,
separators=(",", ":"))`` writes, and refuse what it refuses, whichever library writes it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamdrift.connectors.sql_store.tables import json_text


class Colour(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 2


class Tag(str):
    pass


@dataclasses.dataclass
class Point:
    x: float


def stdlib(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def outcome(fn, value):
    try:
        return "ok", fn(value)
    except Exception as exc:  # noqa: BLE001 - compared, not hidden
        return type(exc).__name__, str(exc)


leaves = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 64, 2 ** 64)
          | st.floats() | st.floats(min_value=-1e-3, max_value=1e-3) | st.floats(min_value=1e14, max_value=1e18)
          | st.text(st.characters(blacklist_categories=()), max_size=8) | st.sampled_from(["null", "1e-5", "0.00001"])
          | st.sampled_from([Colour.RED, Level.HIGH, uuid.UUID(int=7), dt.datetime(2026, 1, 1), Tag("t"),
                             np.float64(1e-5), np.int64(3), Point(0.5), {1, 2}, b"x"]))
keys = st.text(max_size=6) | st.integers() | st.booleans() | st.none() | st.floats() | st.just(Tag("k"))
values = st.recursive(leaves, lambda children: st.lists(children, max_size=5) | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(keys, children, max_size=5), max_leaves=40)


@settings(max_examples=2000, deadline=None)
@given(values)
def test_json_columns_keep_the_standard_librarys_text_and_errors(value):
    assert outcome(json_text, value) == outcome(stdlib, value)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from([f"f{i}" for i in range(20)]),
                       st.fixed_dictionaries({"tvd": st.floats(0, 1), "p_value": st.floats(0, 1) | st.none(),
                                              "kld": st.floats(allow_nan=True, allow_infinity=True),
                                              "rejected": st.booleans(), "n": st.integers(0, 10 ** 6)})))
def test_a_results_statistics_keep_the_standard_librarys_text(columns):
    value = {"columns": columns, "fdr": 0.05}
    assert json_text(value) == stdlib(value)


def test_a_circular_or_very_deep_value_is_refused_or_written_as_before():
    loop: dict = {}
    loop["self"] = loop
    assert outcome(json_text, loop) == ("ValueError", "Circular reference detected")
    fan: list = []
    fan.extend([fan] * 10)  # looked into naively, 10**64 paths
    assert outcome(json_text, fan) == ("ValueError", "Circular reference detected")
    deep: list = [0.5]
    for _ in range(300):
        deep = [deep]
    assert json_text(deep) == "[" * 301 + "0.5" + "]" * 301
