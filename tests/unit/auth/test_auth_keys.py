"""Key file parsing: ntpd/NTPsec/chrony formats, errors that name the line but not the key."""

from __future__ import annotations

import pytest

from simple_ntpd.auth import KeyFileError, KeyStore, MacAlgorithm, parse_key_file
from simple_ntpd.auth.keys import Key
from simple_ntpd.errors import ConfigError

SAMPLE = """\
# comment line
1 MD5 secret1            # trailing comment
2 M legacyletter
3 sha1 0123456789abcdef0123456789abcdef01234567
4 SHA-256 HEX:00FF
5 AES 000102030405060708090a0b0c0d0e0f
6 aes128 ASCII:sixteen-bytes-k!
7 AES-128-CMAC HEX:000102030405060708090A0B0C0D0E0F
8 chronykey
9 SHA ASCII:a-long-ascii-key-of-more-than-20-chars

4294967295 sha256 x
"""


def test_sample_parses() -> None:
    store = parse_key_file(SAMPLE, "keys")
    assert len(store) == 10
    expected = {
        1: (MacAlgorithm.MD5, b"secret1"),
        2: (MacAlgorithm.MD5, b"legacyletter"),
        3: (MacAlgorithm.SHA1, bytes.fromhex("0123456789abcdef0123456789abcdef01234567")),
        4: (MacAlgorithm.SHA256, b"\x00\xff"),
        5: (MacAlgorithm.AES128CMAC, bytes(range(16))),
        6: (MacAlgorithm.AES128CMAC, b"sixteen-bytes-k!"),
        7: (MacAlgorithm.AES128CMAC, bytes(range(16))),
        8: (MacAlgorithm.MD5, b"chronykey"),
        9: (MacAlgorithm.SHA1, b"a-long-ascii-key-of-more-than-20-chars"),
        4294967295: (MacAlgorithm.SHA256, b"x"),
    }
    for key_id, (algo, secret) in expected.items():
        key = store.get(key_id)
        assert key is not None
        assert (key.key_id, key.algorithm, key.secret) == (key_id, algo, secret)
    assert store.get(10) is None


def test_twenty_chars_is_ascii_twenty_two_hex_digits_is_hex() -> None:
    store = parse_key_file("1 md5 0123456789abcdef0123\n2 md5 0123456789abcdef012345\n")
    assert store.get(1) == Key(1, MacAlgorithm.MD5, b"0123456789abcdef0123")
    assert store.get(2) == Key(2, MacAlgorithm.MD5, bytes.fromhex("0123456789abcdef012345"))


def test_trusted_ids() -> None:
    store = parse_key_file(SAMPLE, trusted=[1, 3, 99])
    assert store.trusted(1) is not None
    assert store.trusted(2) is None
    assert store.get(2) is not None
    assert store.missing_trusted() == [99]
    everyone = store.with_trusted(None)
    assert everyone.trusted(2) is not None
    assert everyone.missing_trusted() == []


SECRET = "TopSecretValue12"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (f"1 MD5 {SECRET} extra", 1, "4 fields"),
        (f"\n\nx MD5 {SECRET}", 3, "not a number"),
        (f"0 MD5 {SECRET}", 1, "out of range"),
        (f"4294967296 MD5 {SECRET}", 1, "out of range"),
        (f"1 MD5 {SECRET}\n1 SHA1 {SECRET}", 2, "duplicate key id 1"),
        (f"1 DES {SECRET}", 1, "unsupported type"),
        (f"1 MD5 HEX:{SECRET}", 1, "hex digits"),
        ("1 MD5 HEX:abc", 1, "hex digits"),
        ("1 MD5 HEX:", 1, "hex digits"),
        ("1 MD5 ASCII:", 1, "empty"),
        (f"1 MD5 {SECRET}{SECRET}", 1, "must be hex"),
        ("1 MD5 0123456789abcdef01234", 1, "must be hex"),
        (f"1 AES {SECRET[:10]}", 1, "16 bytes"),
        ("1 AES HEX:00112233", 1, "16 bytes"),
        ("1 MD5 ASCII:caf\u00e9", 1, "printable ASCII"),
        ("1", 1, "1 fields"),
    ],
)
def test_errors_name_file_and_line_never_the_key(text: str, line: int, fragment: str) -> None:
    with pytest.raises(KeyFileError) as info:
        parse_key_file(text, "/etc/simple-ntpd/keys")
    err = info.value
    assert isinstance(err, ConfigError)
    assert err.source == "/etc/simple-ntpd/keys"
    assert err.line == line
    assert str(err).startswith(f"/etc/simple-ntpd/keys:{line}: ")
    assert fragment in str(err)
    assert SECRET not in str(err)
    assert SECRET[:10] not in str(err)


def test_key_repr_hides_secret() -> None:
    key = Key(1, MacAlgorithm.MD5, SECRET.encode())
    assert SECRET not in repr(key)
    store = KeyStore({1: key})
    assert SECRET not in repr(store)
    assert 1 in store


@pytest.mark.parametrize(
    ("key_id", "algo", "secret"),
    [(0, MacAlgorithm.MD5, b"x"), (1, MacAlgorithm.MD5, b""), (1, MacAlgorithm.AES128CMAC, b"x")],
)
def test_key_validation(key_id: int, algo: MacAlgorithm, secret: bytes) -> None:
    with pytest.raises(ValueError):
        Key(key_id, algo, secret)
