"""The health of the monitoring job as a Flink cluster's REST API reports it (for the dashboard).

:func:`job_health` reads ``/overview``, ``/jobs/overview`` and, per running job, its checkpoints
(``/jobs/<id>/checkpoints``) and its operators' input watermarks
(``/jobs/<id>/vertices/<vertex>/watermarks``). Nothing is written; a cluster that does not answer
gives ``reachable: False`` and the reason, never an exception.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from streamdrift.connectors.settings import mask_password

#: Flink's "no watermark yet" (Long.MIN_VALUE); any watermark below this is treated as none
_NO_WATERMARK = -(2**62)
MAX_FINISHED_JOBS = 5

__all__ = ["job_health", "rest_base"]


def rest_base(address: str) -> str:
    """``host:port`` or ``http(s)://host:port[/]`` → ``http(s)://host:port`` (ValueError when empty)."""
    address = str(address).strip().rstrip("/")
    if not address:
        raise ValueError("the Flink REST address is empty: give host:port, e.g. 127.0.0.1:8081")
    return address if address.startswith(("http://", "https://")) else f"http://{address}"


def _get(base: str, path: str, timeout: float) -> Any:
    with urllib.request.urlopen(base + path, timeout=timeout) as response:  # noqa: S310 - an operator's address
        return json.loads(response.read())


def _watermark_ms(base: str, job_id: str, vertices: list[dict], timeout: float) -> int | None:
    """The job's event-time progress: over its operators, the lowest of each operator's lowest
    subtask input watermark (sources, which have none, are left out)."""
    lowest = None
    for vertex in vertices:
        values = [int(float(w["value"])) for w in _get(base, f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks",
                                                       timeout) if str(w.get("id", "")).endswith("currentInputWatermark")]
        values = [v for v in values if v > _NO_WATERMARK]
        if values:
            lowest = min(values) if lowest is None else min(lowest, min(values))
    return lowest


def _job(base: str, summary: dict, timeout: float, now_ms: int) -> dict[str, Any]:
    job_id = summary["jid"]
    out: dict[str, Any] = {"id": job_id, "name": summary.get("name"), "state": summary.get("state"),
                           "start_ms": summary.get("start-time"), "last_checkpoint_ms": None,
                           "checkpoint_age_s": None, "checkpoints_failed": None, "watermark_ms": None,
                           "watermark_lag_s": None}
    if out["state"] != "RUNNING":
        return out
    try:
        checkpoints = _get(base, f"/jobs/{job_id}/checkpoints", timeout)
        completed = (checkpoints.get("latest") or {}).get("completed") or {}
        if completed.get("latest_ack_timestamp"):
            out["last_checkpoint_ms"] = int(completed["latest_ack_timestamp"])
            out["checkpoint_age_s"] = max(0.0, (now_ms - out["last_checkpoint_ms"]) / 1000)
        out["checkpoints_failed"] = (checkpoints.get("counts") or {}).get("failed")
        watermark = _watermark_ms(base, job_id, _get(base, f"/jobs/{job_id}", timeout).get("vertices", []), timeout)
        if watermark is not None:
            out["watermark_ms"] = watermark
            out["watermark_lag_s"] = (now_ms - watermark) / 1000
    except (OSError, ValueError, KeyError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def job_health(address: str, *, timeout: float = 3.0, now_ms: int | None = None) -> dict[str, Any]:
    """What the cluster at ``address`` (``host:port``) says about its jobs.

    Returns ``{"address", "reachable", "error", "flink_version", "jobs": [...]}``; each job has
    ``id``, ``name``, ``state``, ``start_ms`` and, when running, ``last_checkpoint_ms`` and
    ``checkpoint_age_s`` (the newest completed checkpoint), ``checkpoints_failed``,
    ``watermark_ms`` (the lowest operator input watermark, epoch ms) and ``watermark_lag_s``
    (now − watermark: how far event time is behind the wall clock). Running jobs first, then at
    most :data:`MAX_FINISHED_JOBS` others, newest first. Passwords in the address are masked.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out: dict[str, Any] = {"address": mask_password(address), "reachable": False, "error": None,
                           "flink_version": None, "jobs": []}
    try:
        base = rest_base(address)
        out["flink_version"] = _get(base, "/overview", timeout).get("flink-version")
        jobs = _get(base, "/jobs/overview", timeout).get("jobs", [])
    except (OSError, ValueError) as exc:
        out["error"] = mask_password(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}")
        return out
    out["reachable"] = True
    jobs = sorted(jobs, key=lambda j: (j.get("state") != "RUNNING", -(j.get("start-time") or 0)))
    running = [j for j in jobs if j.get("state") == "RUNNING"]
    others = [j for j in jobs if j.get("state") != "RUNNING"][:MAX_FINISHED_JOBS]
    out["jobs"] = [_job(base, j, timeout, now_ms) for j in running + others]
    return out
