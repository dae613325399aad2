"""Poll interval, reachability register and burst policy of one association.

This module owns *when* an association asks its server, nothing else:

* the 8-bit reachability register (RFC 5905 section 9.2 and 13): shifted left
  at every poll, bit 0 set by every valid reply; the server is unreachable
  once the last 8 polls went unanswered;
* iburst (RFC 5905 section 13, chrony ``iburst``): the first
  :data:`IBURST_COUNT` polls go :data:`IBURST_INTERVAL_S` seconds apart, so a
  fresh daemon has several samples from every server within about 10 s;
* the poll exponent, adapted between ``min_poll`` and ``max_poll`` by the
  "jiggle counter" of RFC 5905 Appendix A.5.5.6: a sample whose offset stays
  within :data:`PGATE` times the source's jitter of what the source predicted
  adds the poll exponent to the counter, any other subtracts twice that; the
  poll goes up one step when the counter passes :data:`POLL_LIMIT` and down
  one step below ``-POLL_LIMIT``. A stable source is thus polled less often,
  a noisy one (or an unsettled local clock) more often;
* the RATE kiss-o'-death backoff (RFC 5905 section 7.4): the poll at least
  doubles (one step up, or the server's poll if larger), up to ``max_poll``.
"""

from __future__ import annotations

from collections.abc import Callable

# RFC 5905 section 7.2: poll exponents are log2 seconds, MINPOLL 4 to MAXPOLL 17. Like chrony
# (minpoll down to -6) we also accept 0 to 3, for servers on the same LAN and for tests.
MIN_POLL_LIMIT = 0
MAX_POLL_LIMIT = 17
# RFC 5905 Appendix A.5.5.6: poll-adjust threshold (LIMIT 30) and gate. The RFC's PGATE is 4,
# applied to the clock's residual offset; we apply the gate to one raw sample's deviation from
# its filter's prediction, which spreads more, so the gate is tighter (tuned in the simulator:
# with 4 the poll climbed so fast on a 1 ms-jitter path that the fit starved).
POLL_LIMIT = 30
PGATE = 2.0
# iburst: chrony sends 4 to 8 requests 2 s apart at start; we send 8.
IBURST_COUNT = 8
IBURST_INTERVAL_S = 2
REACH_MASK = 0xFF
NS_PER_S = 1_000_000_000


class PollController:
    """Poll exponent, reach register and burst state of one association."""

    def __init__(self, min_poll: int, max_poll: int, *, iburst: bool = True) -> None:
        if not MIN_POLL_LIMIT <= min_poll <= max_poll <= MAX_POLL_LIMIT:
            raise ValueError(f"need {MIN_POLL_LIMIT} <= min_poll <= max_poll <= {MAX_POLL_LIMIT}")
        self.min_poll = min_poll
        self.max_poll = max_poll
        self.poll = min_poll
        self.reach = 0
        self.unanswered = 0
        """Polls sent since the last valid reply."""
        self._burst_left = IBURST_COUNT if iburst else 0
        self._counter = 0

    @property
    def in_burst(self) -> bool:
        return self._burst_left > 0

    @property
    def reachable(self) -> bool:
        return self.reach != 0

    def on_poll(self) -> None:
        """A request is being sent: shift the reach register (RFC 5905 section 13)."""
        self.reach = (self.reach << 1) & REACH_MASK
        self.unanswered += 1
        if self._burst_left:
            self._burst_left -= 1

    def on_reply(self) -> None:
        """A valid reply arrived for the outstanding request."""
        self.reach |= 1
        self.unanswered = 0

    def on_sample(self, stable: bool) -> None:
        """Adapt the poll to how well the source's new sample fitted its estimate."""
        if stable:
            self._counter += max(self.poll, 1)  # poll 0 must still be able to climb
            if self._counter > POLL_LIMIT:
                self._counter = POLL_LIMIT
                if self.poll < self.max_poll:
                    self._counter = 0
                    self.poll += 1
        else:
            self._counter -= 2 * max(self.poll, 1)
            if self._counter < -POLL_LIMIT:
                self._counter = -POLL_LIMIT
                if self.poll > self.min_poll:
                    self._counter = 0
                    self.poll -= 1

    def on_kod_rate(self, server_poll: int) -> None:
        """RATE kiss: at least double the interval, stop any burst (RFC 5905 section 7.4)."""
        self.poll = min(self.max_poll, max(self.poll + 1, server_poll))
        self._counter = 0
        self._burst_left = 0

    def interval_ns(self, rng: Callable[[int], bytes]) -> int:
        """Time to the next poll: 2 s in a burst, else 2**poll s less a random 0-1/16.

        The random part keeps associations started together from polling in
        lockstep; it is only ever subtracted so the server's rate limit holds.
        """
        if self._burst_left:
            return IBURST_INTERVAL_S * NS_PER_S
        base = (1 << self.poll) * NS_PER_S
        jitter = int.from_bytes(rng(2), "big") * (base // 16) // 0x10000
        return base - jitter
