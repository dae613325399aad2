"""Datagrams the kernel dropped on the NTP sockets, from the text of ``/proc/net/udp{,6}``.

A request that arrives while a socket's receive buffer is full is dropped by the
kernel before any worker sees it, so the daemon's own counters cannot count it.
The kernel counts it per socket: the last column, ``drops``, of each row of
``/proc/net/udp`` and ``/proc/net/udp6`` (proc(5); the socket's ``sk_drops``,
which also counts the rare datagram with a bad checksum). This module sums that
column over the daemon's sockets, found by inode.

Pure: the shell reads the files and passes their text with its sockets' inodes.
A row that does not parse is skipped, never raised on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

__all__ = ["socket_drops"]

# Columns of a row: sl, local_address, rem_address, st, tx_queue:rx_queue,
# tr:tm->when, retrnsmt, uid, timeout, inode, ref, pointer, drops. The header
# line names them differently ("tx_queue rx_queue" are two words there), so
# rows are read by position.
_INODE = 9
_DROPS = 12
_FIELDS = 13


def socket_drops(texts: Iterable[str], inodes: Collection[int]) -> int:
    """Sum of the ``drops`` column over the rows whose inode is in ``inodes``.

    Args:
        texts: the contents of ``/proc/net/udp`` and ``/proc/net/udp6`` (either may be missing).
        inodes: the inode numbers of the sockets to count (``os.fstat(fd).st_ino``).
    """
    total = 0
    for text in texts:
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < _FIELDS or not fields[0].endswith(":"):
                continue  # the header, or a row this kernel writes differently
            try:
                inode = int(fields[_INODE])
                drops = int(fields[_DROPS])
            except ValueError:
                continue
            if inode in inodes and drops > 0:
                total += drops
    return total
