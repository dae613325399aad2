"""The upstream client and timekeeping core (sans-IO).

Per-upstream associations (:mod:`.association`, :mod:`.poll`) measure their
servers; the clock filter (:mod:`.filter`), intersection (:mod:`.select`),
clustering and combining (:mod:`.combine`) and the discipline
(:mod:`.discipline`) turn measurements into a served-clock correction;
:mod:`.system` glues them together and publishes
:class:`simple_ntpd.served_clock.ServedClockState`. Nothing here does I/O:
time, randomness and bytes come in as arguments, actions go out.
"""
