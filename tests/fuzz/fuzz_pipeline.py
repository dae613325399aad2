"""atheris harness for the whole request pipeline (ACL, rate limit, auth all on).

Not collected by pytest (the file name does not start with ``test_``) and not
run by ``make test``. Run by hand, bounded, e.g.::

    .venv/bin/pip install atheris        # needs clang/libFuzzer; CPython 3.11 wheels exist
    .venv/bin/python -m tests.fuzz.fuzz_pipeline -runs=2000000 -max_len=600
    .venv/bin/python -m tests.fuzz.fuzz_pipeline -max_total_time=600 corpus_dir/

(from the repository root; ``-m`` so that ``tests`` is importable). A crash
writes ``crash-*`` with the input; replay it with the same command and the
file name as the only argument.

The input is split into a source address choice, a time step and the
datagram. The oracle is the one of tests/unit/server/test_pipeline_security_fuzz.py:
never raise, count every datagram exactly once, never answer a datagram the
codec refuses, never answer with more bytes than were received.
"""

from __future__ import annotations

import sys

from simple_ntpd.reasons import DROP_REASON_COUNT, DropReason
from simple_ntpd.stats import DROP_BASE, Counter
from tests.unit.server.test_pipeline_security_fuzz import T0, pipeline, policy, well_formed_request

ADDRESSES = (
    "10.1.2.3",
    "10.9.1.1",
    "127.0.0.1",
    "8.8.8.8",
    "::ffff:10.1.2.3",
    "2001:db8::1",
    "2001:db8:9::1",
    "fe80::1%eth0",
    "garbage",
)
_PIPELINES = {
    flags: pipeline(policy(*flags)) for flags in ((False, False, True), (True, True, False))
}
_DROPS = slice(DROP_BASE, DROP_BASE + DROP_REASON_COUNT)


def one_input(raw: bytes) -> None:
    if len(raw) < 3:
        return
    flags = (False, False, True) if raw[0] & 1 else (True, True, False)
    p, now = _PIPELINES[flags]
    addr = ADDRESSES[raw[1] % len(ADDRESSES)]
    now[0] += raw[2] / 64.0
    data = raw[3:]
    before = list(p.counts)
    out = p.handle(data, T0, addr, 40000)
    assert p.counts[Counter.RECEIVED] == before[Counter.RECEIVED] + 1
    responded = p.counts[Counter.RESPONDED] - before[Counter.RESPONDED]
    dropped = sum(p.counts[_DROPS]) - sum(before[_DROPS])
    assert responded + dropped == 1
    if isinstance(out, DropReason):
        return
    assert well_formed_request(data), data.hex()
    assert 48 <= len(out) <= len(data)


def main() -> None:
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
