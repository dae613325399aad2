"""Symmetric-key authentication of requests and responses (RFC 5905 MAC, RFC 8573 AES-CMAC).

This module owns the per-packet authentication decision: find the MAC in a
request, choose the key, verify, and sign the response with the same key and
the same digest length. It also offers the two calls an NTP *client* needs
(:func:`sign_request`, :func:`verify_reply`), so that upstream associations use
the same rules. The digest arithmetic is :mod:`simple_ntpd.auth.mac`; the key
file is :mod:`simple_ntpd.auth.keys`.

Where the MAC is (RFC 7822 and practice, see :mod:`simple_ntpd.wire.packet`):
NTPv3 and older: a trailer of a key id and a 16..64 octet digest. NTPv4: a
trailer of at most 24 octets after the extension fields. One exception is
accepted on purpose: NTPsec's ``ntpdig -a`` sends a *full* 32-octet SHA256
digest after an NTPv4 header (a 36-octet trailer), which the RFC 7822 rule
reads as an extension field whose header is the key id. When that reading
fails (a key id below 65536 gives a field length under 16, which RFC 7822
section 3 forbids), the trailer has a legal NTPv3 MAC length, and it verifies
with a trusted key, it is read as a MAC, as NTPsec's own server does; if it
does not verify it stays a malformed datagram and gets no answer at all. A
trailer that parses as extension fields is never reinterpreted.

Outcomes of :func:`authenticate`:

* ``None``: no MAC (or a crypto-NAK sent by the client): unauthenticated.
  Extension fields without a MAC are ignored, as before.
* :class:`Authenticated`: the key and the digest length to answer with.
* :data:`BAD_AUTH`: a MAC with an unknown or untrusted key id, or that does
  not verify. The pipeline answers a crypto-NAK or drops (configuration).
* a :class:`DropReason`: the trailer is malformed.

Never larger than the request: an authenticated response is the 48-octet
header plus a key id and a digest as long as the request's, and the request
carried at least that; a crypto-NAK (52 octets) answers a request that carried
at least a 20-octet MAC trailer (68 octets or more).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from simple_ntpd.auth.keys import Key, KeyStore
from simple_ntpd.auth.mac import compute_mac, verify_mac
from simple_ntpd.reasons import DropReason
from simple_ntpd.wire.constants import HEADER_LEN, MAC_KEY_ID_LEN, MIN_MAC_DIGEST_LEN
from simple_ntpd.wire.packet import Mac, try_decode_packet

__all__ = [
    "BAD_AUTH",
    "CRYPTO_NAK_TRAILER",
    "Authenticated",
    "authenticate",
    "sign_request",
    "sign_response",
    "verify_reply",
]

# RFC 5905 section 7.4: the crypto-NAK is a MAC of only a zero key id.
CRYPTO_NAK_TRAILER: Final = b"\0\0\0\0"
# RFC 5905 section 7.3 (NTPv3 MAC lengths, kept for NTPv4 by NTPsec and chrony):
# digests of 16 to 64 octets in whole words.
_MAX_DIGEST_LEN = 64
_KEY_ID = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class Authenticated:
    """A request whose MAC verified: answer with ``key`` and ``digest_len`` octets of digest."""

    key: Key
    digest_len: int


class _BadAuth:
    """Marker type of :data:`BAD_AUTH`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD_AUTH"


BAD_AUTH: Final = _BadAuth()
"""A MAC that names no trusted key or does not verify."""


def _legacy_mac(data: bytes) -> Mac | None:
    """A whole-trailer MAC read the NTPv3 way (key id + 16..64 octet digest), or None."""
    digest_len = len(data) - HEADER_LEN - MAC_KEY_ID_LEN
    if digest_len < MIN_MAC_DIGEST_LEN or digest_len > _MAX_DIGEST_LEN or digest_len % 4:
        return None
    (key_id,) = _KEY_ID.unpack_from(data, HEADER_LEN)
    return Mac(key_id, bytes(data[HEADER_LEN + MAC_KEY_ID_LEN :]))


def _verified(keys: KeyStore | None, data: bytes, mac: Mac) -> Authenticated | None:
    key = keys.trusted(mac.key_id) if keys is not None else None
    if key is None:
        return None
    # The MAC covers everything before it: header and extension fields (RFC 7822 section 7.5).
    covered = data[: len(data) - MAC_KEY_ID_LEN - len(mac.digest)]
    if not verify_mac(key, covered, mac.digest):
        return None
    return Authenticated(key, len(mac.digest))


def authenticate(
    keys: KeyStore | None, data: bytes
) -> Authenticated | _BadAuth | DropReason | None:
    """Authenticate a request of more than 48 octets; see the module docstring for outcomes."""
    decoded = try_decode_packet(data)
    if isinstance(decoded, DropReason):
        if decoded is DropReason.BAD_EXTENSION:
            # NTPsec's full-length SHA256 MAC after an NTPv4 header (module
            # docstring). Accepted only when it verifies: otherwise the
            # datagram stays what the codec says it is, malformed, and is
            # never answered, not even with a crypto-NAK.
            mac = _legacy_mac(data)
            if mac is not None:
                found = _verified(keys, data, mac)
                if found is not None:
                    return found
        return decoded
    mac = decoded.mac
    if mac is None or mac.is_crypto_nak:
        return None
    return _verified(keys, data, mac) or BAD_AUTH


def sign_response(response: bytes | bytearray, auth: Authenticated) -> bytes:
    """The response followed by a MAC with the request's key and digest length."""
    digest = compute_mac(auth.key, bytes(response), auth.digest_len)
    return bytes(response) + _KEY_ID.pack(auth.key.key_id) + digest


# -- for NTP clients (upstream associations) ------------------------------------


def sign_request(packet: bytes, key: Key, digest_len: int | None = None) -> bytes:
    """``packet`` (header and extension fields) followed by its MAC under ``key``.

    ``digest_len`` truncates the digest (e.g. 20 for an NTPsec ntpd peer with a
    SHA256 key); None sends the full digest, as chronyd and ntpdig do. With a
    digest over 20 octets an NTPv4 packet is only understood by servers that
    accept the NTPsec layout; chronyd sends such requests as NTPv3.
    """
    return packet + _KEY_ID.pack(key.key_id) + compute_mac(key, packet, digest_len)


def verify_reply(keys: KeyStore, reply: bytes, expected_key_id: int) -> bool:
    """Whether ``reply`` carries a valid MAC by ``expected_key_id`` (a trusted key).

    A crypto-NAK, a missing MAC, another key id or a bad digest all fail; the
    caller then discards the reply (RFC 5905 section 8, the ``auth`` check).
    """
    if len(reply) <= HEADER_LEN:
        return False
    result = authenticate(keys, reply)
    return isinstance(result, Authenticated) and result.key.key_id == expected_key_id
