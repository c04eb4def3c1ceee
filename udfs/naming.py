"""Feature-name normalisation, as MLRun does it.

MLRun's ``norm_column_name`` removes ``(`` and ``)`` and turns each space into ``_``
(only the space character; tabs and other whitespace are kept). An endpoint's
``feature_stats`` keys are the normalised names, so the window's columns must be
normalised the same way before they are matched against the reference.
"""

from __future__ import annotations

from collections.abc import Iterable

_TRANSLATION = str.maketrans({" ": "_", "(": None, ")": None})


def normalize_name(name: object) -> str:
    """Return ``str(name)`` without parentheses and with spaces turned into ``_``.

    >>> normalize_name("petal length (cm)")
    'petal_length_cm'
    """
    return str(name).translate(_TRANSLATION)


def normalize_names(names: Iterable[object]) -> list[str]:
    """Normalise every name; raise ValueError when two names become the same.

    MLRun refuses the same collision (``"a b"`` and ``"a_b"`` in one frame) rather than
    silently merging two columns into one; so do we.

    >>> normalize_names(['petal length (cm)', 'sepal width'])
    ['petal_length_cm', 'sepal_width']
    """
    seen: dict[str, object] = {}
    out = []
    for name in names:
        norm = normalize_name(name)
        if norm in seen:
            raise ValueError(
                f"columns {seen[norm]!r} and {name!r} both normalise to {norm!r}; "
                "rename one of them before computing statistics"
            )
        seen[norm] = name
        out.append(norm)
    return out
