"""The atheris harness entry point runs without atheris on random inputs, so it stays usable."""

from __future__ import annotations

import random

from tests.fuzz.fuzz_pipeline import one_input


def test_harness_entry_point_on_random_inputs() -> None:
    rng = random.Random(20261204)
    for _ in range(3000):
        one_input(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 140))))
    # and on a valid request from an allowed source (first byte picks the policy)
    one_input(bytes([1, 0, 0, 0x23]) + bytes(47))
