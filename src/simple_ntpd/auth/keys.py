"""Symmetric keys and the ntpd/chrony key file format.

This module owns parsing the key file text into a :class:`KeyStore` and the
:class:`Key` value. It never reads the file (the shell passes the text and the
file name for messages) and never puts key material in a message, a repr or a
log line.

Format, one key per line, ``#`` starts a comment::

    KEYID TYPE KEY        # ntpd, NTPsec, chrony
    KEYID KEY             # chrony: TYPE defaults to MD5

* KEYID: 1 to 2**32 - 1 (the 32-bit key identifier of RFC 5905 section 7.3;
  0 is reserved). A duplicate id is an error.
* TYPE, case-insensitive: MD5 (alias ``M``, ntpd's legacy letter), SHA1
  (``SHA``, ``SHA-1``), SHA256 (``SHA-256``), AES128CMAC (``AES``,
  ``AES128``, ``AES-128``, ``AES-128-CMAC``, ``CMAC``; RFC 8573).
* KEY: ``HEX:...`` or ``ASCII:...`` (chrony's prefixes) say what they are.
  Without a prefix, NTPsec/ntpd rules apply: up to 20 characters is ASCII,
  longer is hex. A longer unprefixed key that is not hex is refused (chrony
  would read it as ASCII; write ``ASCII:`` to say so).
* AES128CMAC keys must be exactly 16 bytes (RFC 8573 section 4: AES-128).
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from simple_ntpd.errors import ConfigError

__all__ = ["Key", "KeyFileError", "KeyStore", "MacAlgorithm", "parse_key_file"]

MAX_KEY_ID = 0xFFFFFFFF
"""RFC 5905 section 7.3: the key identifier is a 32-bit field."""
MAX_ASCII_KEY_LENGTH = 20
"""ntpd/NTPsec: an unprefixed key of up to 20 characters is ASCII, longer is hex."""
AES128_KEY_BYTES = 16
"""RFC 8573 section 4: AES-CMAC with a 128-bit key."""
_HEX = frozenset(string.hexdigits)


class MacAlgorithm(Enum):
    """MAC algorithms, with their digest length in bytes."""

    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    AES128CMAC = "aes128cmac"

    @property
    def digest_size(self) -> int:
        return _DIGEST_SIZES[self]


_DIGEST_SIZES = {
    MacAlgorithm.MD5: 16,
    MacAlgorithm.SHA1: 20,
    MacAlgorithm.SHA256: 32,
    MacAlgorithm.AES128CMAC: 16,
}

_TYPE_NAMES: dict[str, MacAlgorithm] = {
    "md5": MacAlgorithm.MD5,
    "m": MacAlgorithm.MD5,
    "sha1": MacAlgorithm.SHA1,
    "sha": MacAlgorithm.SHA1,
    "sha-1": MacAlgorithm.SHA1,
    "sha256": MacAlgorithm.SHA256,
    "sha-256": MacAlgorithm.SHA256,
    "aes128cmac": MacAlgorithm.AES128CMAC,
    "aes": MacAlgorithm.AES128CMAC,
    "aes128": MacAlgorithm.AES128CMAC,
    "aes-128": MacAlgorithm.AES128CMAC,
    "aes-128-cmac": MacAlgorithm.AES128CMAC,
    "cmac": MacAlgorithm.AES128CMAC,
}


class KeyFileError(ConfigError):
    """A key file line is invalid. The message names file and line, never the key."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Key:
    """One symmetric key. The secret is kept out of ``repr``."""

    key_id: int
    algorithm: MacAlgorithm
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.key_id <= MAX_KEY_ID:
            raise ValueError("key id out of range 1..2**32-1")
        if not self.secret:
            raise ValueError("empty key")
        if self.algorithm is MacAlgorithm.AES128CMAC and len(self.secret) != AES128_KEY_BYTES:
            raise ValueError("AES128CMAC key must be 16 bytes")


class KeyStore:
    """Keys by id, and which of them are trusted.

    ``trusted`` None means every key in the file is trusted (chrony: every key
    in ``keyfile`` may be used); otherwise only the listed ids are (ntpd's
    ``trustedkey``).
    """

    __slots__ = ("_keys", "_trusted")

    def __init__(self, keys: Mapping[int, Key], trusted: Iterable[int] | None = None) -> None:
        self._keys = dict(keys)
        self._trusted = None if trusted is None else frozenset(trusted)

    def get(self, key_id: int) -> Key | None:
        """The key with ``key_id``, trusted or not."""
        return self._keys.get(key_id)

    def trusted(self, key_id: int) -> Key | None:
        """The key with ``key_id`` if it may authenticate (the pipeline's lookup)."""
        if self._trusted is not None and key_id not in self._trusted:
            return None
        return self._keys.get(key_id)

    def with_trusted(self, trusted: Iterable[int] | None) -> KeyStore:
        """The same keys with another trusted set."""
        return KeyStore(self._keys, trusted)

    def missing_trusted(self) -> list[int]:
        """Trusted ids with no key in the file (worth a configuration warning)."""
        if self._trusted is None:
            return []
        return sorted(self._trusted - self._keys.keys())

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __repr__(self) -> str:
        return f"KeyStore(ids={sorted(self._keys)}, trusted={self._trusted})"


def _decode_secret(text: str) -> bytes:
    """The key bytes from the KEY field. Raises ValueError with a key-free message."""
    upper = text[:6].upper()
    if upper.startswith("HEX:"):
        body = text[4:]
        if not body or len(body) % 2 or not _HEX.issuperset(body):
            raise ValueError("HEX: key must be an even number of hex digits")
        return bytes.fromhex(body)
    if upper.startswith("ASCII:"):
        body = text[6:]
        if not body:
            raise ValueError("empty ASCII: key")
        return _ascii(body)
    if len(text) <= MAX_ASCII_KEY_LENGTH:
        return _ascii(text)
    if len(text) % 2 or not _HEX.issuperset(text):
        raise ValueError(
            "a key longer than 20 characters must be hex (even number of digits); "
            "write ASCII:... for a long ASCII key"
        )
    return bytes.fromhex(text)


def _ascii(text: str) -> bytes:
    if not text.isascii() or not text.isprintable():
        raise ValueError("ASCII key must be printable ASCII")
    return text.encode("ascii")


def parse_key_file(
    text: str, source: str = "<keys>", trusted: Iterable[int] | None = None
) -> KeyStore:
    """Parse key file ``text``; ``source`` names the file in errors.

    Raises:
        KeyFileError: a line is malformed; the message names file, line and problem.
    """
    keys: dict[int, Key] = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.partition("#")[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) == 2:
            id_text, type_text, key_text = fields[0], "MD5", fields[1]
        elif len(fields) == 3:
            id_text, type_text, key_text = fields
        else:
            raise KeyFileError(
                source, lineno, f"expected 'KEYID TYPE KEY', got {len(fields)} fields"
            )
        if not id_text.isdigit():
            raise KeyFileError(source, lineno, f"key id {id_text[:12]!r} is not a number")
        key_id = int(id_text)
        if not 1 <= key_id <= MAX_KEY_ID:
            raise KeyFileError(source, lineno, f"key id {key_id} out of range 1..{MAX_KEY_ID}")
        if key_id in keys:
            raise KeyFileError(source, lineno, f"duplicate key id {key_id}")
        algorithm = _TYPE_NAMES.get(type_text.lower())
        if algorithm is None:
            raise KeyFileError(source, lineno, f"key {key_id}: unsupported type {type_text[:20]!r}")
        try:
            secret = _decode_secret(key_text)
            keys[key_id] = Key(key_id, algorithm, secret)
        except ValueError as exc:
            # The exception text never contains the key (see _decode_secret
            # and Key.__post_init__), so it is safe to repeat.
            raise KeyFileError(source, lineno, f"key {key_id}: {exc}") from None
    return KeyStore(keys, trusted)
