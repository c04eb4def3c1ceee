"""A value that a running job loads from its stores and loads again while it runs: the endpoints,
the enabled applications, the alert configurations. Pure: the loading is a ``load()`` callable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("streamdrift.reloading")

__all__ = ["Reloading"]


class Reloading:
    """The last value of ``load()``, loaded again by :meth:`refresh` once ``refresh_seconds`` have
    passed since the last load (at once with ``force``). A load that fails keeps the last value,
    logged with ``what`` (``size(value)`` of them), and counts as a load (the next try waits
    ``refresh_seconds`` again). The first load's error is raised (with nothing to go on, the job
    cannot start) unless ``required`` is False: then ``value`` stays ``default`` until a load works.

    >>> now = [0.0]
    >>> versions = iter(["v1", "v2"])
    >>> configs = Reloading(lambda: next(versions), refresh_seconds=30, what="configs", clock=lambda: now[0])
    >>> configs.refresh(), configs.value
    (True, 'v1')
    >>> now[0] = 10.0; configs.refresh(), configs.value  # not due
    (False, 'v1')
    >>> now[0] = 30.0; configs.refresh(), configs.value
    (True, 'v2')
    """

    def __init__(self, load: Callable[[], Any], refresh_seconds: float = 30.0, what: str = "values",
                 clock: Callable[[], float] = time.monotonic, size: Callable[[Any], int] = len, *,
                 required: bool = True, default: Any = None):
        self._load = load
        self.refresh_seconds = refresh_seconds
        self.what = what
        self._clock = clock
        self._size = size
        self.required = required
        self.value: Any = default
        self.loaded = False
        self.loaded_at = -float("inf")

    def age(self) -> float:
        """Seconds since the last load (or failed reload); infinite before the first.

        >>> now = [100.0]
        >>> names = Reloading(lambda: ['a'], clock=lambda: now[0])
        >>> names.age()
        inf
        >>> names.refresh(); now[0] = 112.5; names.age()
        True
        12.5
        """
        return self._clock() - self.loaded_at

    def refresh(self, force: bool = False) -> bool:
        """Load again when due (or ``force``); True when a new value was loaded.

        A failed reload keeps the last value:

        >>> answers = iter([['a', 'b'], ConnectionError('store down')])
        >>> def load():
        ...     answer = next(answers)
        ...     if isinstance(answer, Exception):
        ...         raise answer
        ...     return answer
        >>> import logging; logging.disable(logging.WARNING)
        >>> names = Reloading(load, what='names')
        >>> names.refresh(), names.refresh(force=True), names.value
        (True, False, ['a', 'b'])
        >>> logging.disable(logging.NOTSET)
        """
        now = self._clock()
        if not force and now - self.loaded_at < self.refresh_seconds:
            return False
        try:
            value = self._load()
        except Exception as exc:
            if not self.loaded and self.required:
                raise
            log.warning("reloading the %s failed (%s); keeping the %d known ones", self.what,
                        type(exc).__name__, self._size(self.value) if self.loaded else 0)
            self.loaded_at = now
            return False
        self.value, self.loaded_at, self.loaded = value, now, True
        return True
