"""Shared memory between the main process and the data-plane workers.

One anonymous ``MAP_SHARED`` mapping, created before the workers are forked:

* page 0: the served-clock seqlock (:mod:`simple_ntpd.served_clock`);
* then one counter slot per worker (:mod:`simple_ntpd.stats`), written only
  by the worker that owns it, summed by the main process.
"""

from __future__ import annotations

import mmap
import struct

from simple_ntpd.served_clock import STATE_BUFFER_SIZE, SeqlockReader, SeqlockWriter
from simple_ntpd.stats import COUNTERS_PER_SLOT, SLOT_BYTES

MAX_SLOTS = 256
_STATE_REGION = 4096
_SLOTS = struct.Struct(f"={COUNTERS_PER_SLOT}Q")
assert STATE_BUFFER_SIZE <= _STATE_REGION


class SharedRegion:
    """The mapping, with typed views of its parts."""

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self.slots = slots
        self._map = mmap.mmap(-1, _STATE_REGION + slots * SLOT_BYTES, flags=mmap.MAP_SHARED)
        self._view = memoryview(self._map)

    @property
    def state_buffer(self) -> memoryview:
        return self._view[:_STATE_REGION]

    def writer(self) -> SeqlockWriter:
        return SeqlockWriter(self.state_buffer)

    def reader(self) -> SeqlockReader:
        return SeqlockReader(self.state_buffer)

    def slot_offset(self, slot: int) -> int:
        if not 0 <= slot < self.slots:
            raise IndexError(slot)
        return _STATE_REGION + slot * SLOT_BYTES

    def write_slot(self, slot: int, counts: list[int]) -> None:
        _SLOTS.pack_into(self._map, self.slot_offset(slot), *counts)

    def read_slot(self, slot: int) -> list[int]:
        return list(_SLOTS.unpack_from(self._map, self.slot_offset(slot)))

    def clear_slot(self, slot: int) -> None:
        self.write_slot(slot, [0] * COUNTERS_PER_SLOT)

    def slot_writer(self, slot: int) -> SlotWriter:
        return SlotWriter(self._map, self.slot_offset(slot))


class SlotWriter:
    """Copies a worker's plain counter list into its slot: one pack_into."""

    __slots__ = ("_buf", "_offset")

    def __init__(self, buf: mmap.mmap, offset: int) -> None:
        self._buf = buf
        self._offset = offset

    def flush(self, counts: list[int]) -> None:
        _SLOTS.pack_into(self._buf, self._offset, *counts)
