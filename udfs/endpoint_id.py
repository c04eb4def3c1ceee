"""Model endpoint ids, as MLRun derives them.

MLRun's serving events carry no endpoint id: it is derived from where the model is served. MLRun's
``EndpointUID`` hashes ``f"{project}_{function}_{tag or hash_key or 'N/A'}_{model}_{version or 'N/A'}"``
with SHA-1; deriving ours the same way keeps an MLRun user's endpoint ids.

Function hash keys (``project/function@hash``) are not supported: a function without a tag is
hashed with ``N/A``, as MLRun does for a function that has neither a tag nor a hash key.
"""

from __future__ import annotations

import hashlib

NOT_AVAILABLE = "N/A"


def endpoint_uid(
    project: str,
    function: str,
    tag: str | None,
    model: str,
    version: str | None,
) -> str:
    """Return the endpoint id of ``model`` (at ``version``) served by ``project/function:tag``.

    ``sha1(f"{project}_{function}_{tag or 'N/A'}_{model}_{version or 'N/A'}").hexdigest()``:
    an empty or None tag or version is ``N/A``.

    >>> endpoint_uid("p", "f", None, "m", None) == hashlib.sha1(b"p_f_N/A_m_N/A").hexdigest()
    True
    """
    for what, value in (("project", project), ("function", function), ("model", model)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"an endpoint id needs a non-empty {what} name, got {value!r}")
    function_ref = f"{function}_{tag or NOT_AVAILABLE}"
    versioned_model = f"{model}_{version or NOT_AVAILABLE}"
    return hashlib.sha1(f"{project}_{function_ref}_{versioned_model}".encode("utf-8")).hexdigest()


GROUPS = 256
"""Groups of endpoints (:func:`endpoint_group`): the window stage's keys, and the window offsets of
staggered windows (:class:`streamdrift.udfs.events.Tumbling`). Fixed: state is kept under them."""


def endpoint_group(endpoint_id: str) -> str:
    """An endpoint's group: the first two hex digits of the MD5 of its id's UTF-8 (one of
    :data:`GROUPS`), what the job's ``SUBSTRING(MD5(endpoint_id) FROM 1 FOR 2)`` computes in the
    JVM. Stable across versions and parallelisms, since state is kept under it.

    >>> endpoint_group('ep1'), endpoint_group('')
    ('d9', 'd4')
    """
    return hashlib.md5(endpoint_id.encode("utf-8", "surrogatepass")).hexdigest()[:2]


__all__ = ["endpoint_uid", "endpoint_group", "GROUPS", "NOT_AVAILABLE"]
