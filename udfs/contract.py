"""The one contract for accepted input: what the parse stage accepts, every sink accepts.

A record passes the parse stage only if every string, identifier and time in it can be written by
every sink downstream: Arrow and Parquet (strings UTF-8 encodable), the SQL store and the TSDB
(identifiers of 1 to 255 characters without control characters), Python's datetime and the TSDB's
time range (event times between ``now - max_age`` and ``now + max_future``, where ``now`` is the
job's clock when the record is parsed). Anything else is a dead letter with the reason one of these
functions gives, so no sink ever sees what it cannot take.

>>> identifier_problem("fraud-scorer-v3") is None
True
>>> identifier_problem("tab\\tid")
"contains the control character '\\\\t'"
>>> TimeBounds(now_ms=0, max_future_ms=10_000, max_age_ms=10_000).problem(20_000)
"is 20 s ahead of the job's clock (at most 10 s allowed, --max-clock-skew-seconds): check the producer's clock"
"""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

MAX_ID_CHARS = 255
"""Endpoint ids, projects and names that key a store: at most this many characters."""

# not control characters by Unicode's category, but line breaks to anything that prints them
_LINE_BREAKS = frozenset("\u2028\u2029")


def identifier_problem(value: Any, max_chars: int = MAX_ID_CHARS) -> str | None:
    """Why ``value`` cannot key a store, or None when it can.

    An identifier is a string of 1 to ``max_chars`` characters, not only white space, without
    control characters (Unicode category Cc, e.g. ``\\t``, ``\\x00``, ``\\x7f``, ``\\x85``), line or
    paragraph separators, or lone surrogates (not encodable as UTF-8).

    >>> identifier_problem('fraud-scorer') is None
    True
    >>> identifier_problem('x' * 300)
    'is 300 characters long: at most 255'
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    # the usual id, printable ASCII, in C: the parse stage checks each endpoint of each batch,
    # about one per record at thousands of endpoints, and the loop below is slow
    if value.isascii() and value.isprintable() and 0 < len(value) <= max_chars and not value.isspace():
        return None
    if not value.strip():
        return "must be a non-empty string" if not value else "is only white space"
    if len(value) > max_chars:
        return f"is {len(value)} characters long: at most {max_chars}"
    for c in value:
        category = unicodedata.category(c)
        if category == "Cc" or c in _LINE_BREAKS:
            return f"contains the control character {c!r}"
        if category == "Cs":
            return f"contains a lone surrogate {c!r}, which is not valid Unicode"
    return None


def endpoint_id_problem(endpoint_id: Any) -> str | None:
    """:func:`identifier_problem` of an endpoint id (it keys every store and the raw rows).

    >>> endpoint_id_problem('') 
    'must be a non-empty string'
    >>> endpoint_id_problem('def61544') is None
    True
    """
    return identifier_problem(endpoint_id)


def text_problem(value: str) -> str | None:
    """Why a string cannot be written as UTF-8 (a lone surrogate), or None.

    >>> text_problem('naïve') is None
    True
    >>> text_problem('a' + chr(0xD800)).endswith("at 1, a lone surrogate that is not valid Unicode")
    True
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"holds {value[exc.start]!r} at {exc.start}, a lone surrogate that is not valid Unicode"
    return None


def structure_problem(obj: Any) -> str | None:
    """The first string (key or value) anywhere in a decoded JSON value that is not valid
    Unicode (:func:`text_problem`), or None. JSON may escape a lone surrogate (``"\\ud800"``) and
    Python's decoder accepts it; no sink can write it.

    >>> structure_problem({'inputs': [[1, 'ok']]}) is None
    True
    >>> structure_problem({'inputs': [[1, chr(0xD800)]]}).endswith("at 0, a lone surrogate that is not valid Unicode")
    True
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return f"a string {problem}"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


@dataclasses.dataclass(frozen=True)
class TimeBounds:
    """Event times the job accepts, in epoch milliseconds: ``oldest_ms <= t <= newest_ms`` with
    ``newest_ms = now_ms + max_future_ms`` and ``oldest_ms = now_ms - max_age_ms``.

    ``now_ms`` is the job's clock when the batch is parsed. ``max_future_ms`` is the clock skew
    allowed to producers: an event from the future would move the watermark ahead and make every
    other event late. ``max_age_ms`` is how long the stores keep rows (a TSDB refuses rows older
    than its retention, TDengine's KEEP)."""

    now_ms: int
    max_future_ms: int
    max_age_ms: int

    @property
    def newest_ms(self) -> int:
        return self.now_ms + self.max_future_ms

    @property
    def oldest_ms(self) -> int:
        return self.now_ms - self.max_age_ms

    def problem(self, ms: int) -> str | None:
        """Why an event at ``ms`` is refused, or None."""
        if ms > self.newest_ms:
            return (f"is {_duration(ms - self.now_ms)} ahead of the job's clock (at most "
                    f"{_duration(self.max_future_ms)} allowed, --max-clock-skew-seconds): check the producer's clock")
        if ms < self.oldest_ms:
            return (f"is {_duration(self.now_ms - ms)} old, older than the {_duration(self.max_age_ms)} "
                    "the stores keep (setting tsdb_keep_days)")
        return None


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.3g} h" if seconds >= 7200 else f"{seconds / 60:.3g} min"
    return f"{seconds / 86_400:.6g} days"
