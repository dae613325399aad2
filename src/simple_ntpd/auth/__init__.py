"""Symmetric-key authentication (RFC 5905 MAC, RFC 8573 AES-CMAC): keys and MACs.

Pure: key files arrive as text, packets as bytes.
"""

from simple_ntpd.auth.keys import Key, KeyFileError, KeyStore, MacAlgorithm, parse_key_file
from simple_ntpd.auth.mac import compute_mac, verify_mac

__all__ = [
    "Key",
    "KeyFileError",
    "KeyStore",
    "MacAlgorithm",
    "compute_mac",
    "parse_key_file",
    "verify_mac",
]
