"""The health verdict behind ``/health``: may a load balancer send clients here?

Pure: the shell passes the published served-clock state, the current system
time, the maintenance flag and the result of the periodic self-check (a real
NTP query to our own socket), and gets back an HTTP status and a JSON body.

200 means "this server answers with synchronized time that is good enough";
503 means "take me out of rotation", with every reason that applies, the first
being the most important: ``draining`` (SIGTERM received, the daemon serves
for ``drain_timeout`` more seconds), ``maintenance`` (the operator drains the node),
``unsynchronized`` (leap 3: no usable reference), ``self-check failed`` (our
own socket did not answer correctly), ``root distance too large`` (the error
bound we would serve exceeds ``max_root_distance``).
"""

from __future__ import annotations

from typing import Any

from simple_ntpd.served_clock import ServedClockState

# RFC 5905 section 7.3: MAXDIST, the distance threshold of the selection
# algorithm. A sensible default for max_root_distance.
MAXDIST = 1.5

HTTP_OK = 200
HTTP_SERVICE_UNAVAILABLE = 503

REASON_DRAINING = "draining"
REASON_MAINTENANCE = "maintenance"
REASON_UNSYNCHRONIZED = "unsynchronized"
REASON_SELF_CHECK = "self-check failed"
REASON_ROOT_DISTANCE = "root distance too large"


def root_distance(state: ServedClockState, now_ns: int) -> float:
    """RFC 5905 section 11.2.1 (root synchronization distance): delay/2 + dispersion."""
    return state.root_delay / 2 + state.root_dispersion_at(now_ns)


def health(
    state: ServedClockState,
    now_ns: int,
    *,
    maintenance: bool,
    self_check_ok: bool | None,
    max_root_distance: float,
    draining: bool = False,
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON-ready body) for ``/health``.

    ``self_check_ok`` is None when the self-check is disabled or has not run
    yet; then it does not count against health. The body always carries
    ``status`` ("ok"/"unavailable"), ``reasons`` (list, empty when healthy),
    and the facts behind the verdict; ``reason`` is the first reason (absent
    when healthy).
    """
    distance = root_distance(state, now_ns)
    reasons: list[str] = []
    if draining:
        reasons.append(REASON_DRAINING)
    if maintenance:
        reasons.append(REASON_MAINTENANCE)
    if not state.synchronized:
        reasons.append(REASON_UNSYNCHRONIZED)
    if self_check_ok is False:
        reasons.append(REASON_SELF_CHECK)
    # Only meaningful for a synchronized server: unsynchronized already says it.
    if state.synchronized and not distance <= max_root_distance:
        reasons.append(REASON_ROOT_DISTANCE)
    body: dict[str, Any] = {
        "status": "unavailable" if reasons else "ok",
        "reasons": reasons,
        "synchronized": state.synchronized,
        "leap": state.leap,
        "stratum": state.stratum,
        "root_distance": distance,
        "max_root_distance": max_root_distance,
        "maintenance": maintenance,
        "draining": draining,
        "self_check": {None: "unknown", True: "ok", False: "failed"}[self_check_ok],
    }
    if reasons:
        body["reason"] = reasons[0]
        return HTTP_SERVICE_UNAVAILABLE, body
    return HTTP_OK, body
