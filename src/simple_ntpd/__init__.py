"""simple-ntpd: a production NTP server.

The package is a pure (sans-IO) core with a thin shell: everything outside
``runtime/`` and ``daemon/`` takes bytes, timestamps and configuration and
returns bytes and decisions. See docs/development/code-structure.md.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
