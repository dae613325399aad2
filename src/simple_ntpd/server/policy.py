"""The data plane's security policy, built from the configuration.

This module owns mapping the ``[security]`` keys (and ``[network]``
``max_clients`` / ``max_connections_per_second``) onto the objects the
request pipeline uses: an :class:`~simple_ntpd.server.acl.AccessList`,
:class:`~simple_ntpd.server.ratelimit.RateLimitParams` and the authentication
settings. The main process builds one :class:`SecurityPolicy` per
configuration (startup, SIGHUP) and the workers inherit it through ``fork``.
Pure: the key store arrives already parsed.

Meanings given here (docs/security.md is the operator's version):

* ``enable_ddos_protection``: switches on the new-client admission bucket of
  the rate limiter, at ``network.max_connections_per_second`` new clients per
  second (0 there: unbounded). It has effect only with rate limiting on.
* ``max_connections_per_ip`` and ``connection_timeout``: reserved for NTS-KE
  (TCP connections per address, idle timeout); no UDP meaning.
* ``security.enable_authentication``: clients must authenticate (a request
  without a valid MAC is refused). ``ntp_server.enable_authentication``:
  upstream servers must authenticate (the timekeeping side). Either makes the
  key file mandatory; without either, a key file that exists is still loaded,
  so clients that send a MAC get authenticated time (ntpd's behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

from simple_ntpd.auth.keys import KeyStore
from simple_ntpd.config.schema import Config
from simple_ntpd.server.acl import AccessList
from simple_ntpd.server.ratelimit import RateLimitParams

__all__ = ["SecurityPolicy", "keys_required", "policy_from_config", "security_notes"]


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """Everything the request pipeline decides with, besides the packet and the clock."""

    access: AccessList | None = None
    """None (or one that ``allows_all``): every source may be answered."""
    kod_deny: bool = False
    """Answer denied sources with a DENY kiss instead of silence."""
    rate_limit: RateLimitParams | None = None
    """None or ``enabled=False``: no rate limiting."""
    keys: KeyStore | None = None
    """Keys that may authenticate requests; None: no key file."""
    require_auth: bool = False
    """Refuse requests without a valid MAC (``DropReason.AUTH_REQUIRED``)."""
    crypto_nak: bool = True
    """Answer a bad MAC with a crypto-NAK (True) or drop it (False)."""

    @property
    def guarded(self) -> bool:
        """Whether any per-source check (ACL, rate limit) is on."""
        acl_on = self.access is not None and not self.access.allows_all
        rl_on = self.rate_limit is not None and self.rate_limit.enabled
        return acl_on or rl_on


def keys_required(cfg: Config) -> bool:
    """Whether a missing key file is an error (either side requires authentication)."""
    return cfg.security.enable_authentication or cfg.ntp_server.enable_authentication


def rate_limit_params(cfg: Config) -> RateLimitParams | None:
    sec = cfg.security
    if not sec.enable_rate_limiting:
        return None
    admission = float(cfg.network.max_connections_per_second) if sec.enable_ddos_protection else 0.0
    return RateLimitParams(
        enabled=True,
        max_queries_per_minute=float(sec.max_queries_per_minute),
        burst=sec.rate_limit_burst,
        window=float(sec.rate_limit_window),
        trusted_networks=tuple(sec.trusted_networks),
        ipv4_prefix=sec.rate_limit_ipv4_prefix,
        ipv6_prefix=sec.rate_limit_ipv6_prefix,
        kod_leak_log2=None if sec.rate_limit_kod_log2 < 0 else sec.rate_limit_kod_log2,
        max_new_clients_per_second=admission,
        max_clients=cfg.network.max_clients,
    )


def policy_from_config(cfg: Config, keys: KeyStore | None) -> SecurityPolicy:
    """The policy for ``cfg``; ``keys`` is the parsed key file (or None)."""
    sec = cfg.security
    access = AccessList.from_cidrs(sec.allow_query_from, sec.deny_query_from)
    if keys is not None:
        keys = keys.with_trusted(sec.trusted_keys or None)
    return SecurityPolicy(
        access=None if access.allows_all else access,
        kod_deny=sec.kod_deny,
        rate_limit=rate_limit_params(cfg),
        keys=keys,
        require_auth=sec.enable_authentication,
        crypto_nak=sec.auth_failure_response == "crypto-nak",
    )


def security_notes(cfg: Config, keys: KeyStore | None) -> list[str]:
    """Sentences for ``--test-config`` and the startup log: what the security keys do here."""
    sec = cfg.security
    notes: list[str] = []
    access = AccessList.from_cidrs(sec.allow_query_from, sec.deny_query_from)
    if access.allows_all:
        notes.append("access control: every source address is answered")
    else:
        notes.append(
            f"access control: {len(sec.allow_query_from)} allow and "
            f"{len(sec.deny_query_from)} deny rules; denied sources are "
            + ("answered with a DENY kiss-o'-death" if sec.kod_deny else "dropped")
        )
    params = rate_limit_params(cfg)
    if params is None:
        notes.append("rate limiting: off")
    else:
        kod = (
            "never answered"
            if params.kod_leak_log2 is None
            else f"1 in {2**params.kod_leak_log2} answered with a RATE kiss-o'-death"
        )
        notes.append(
            f"rate limiting: {sec.max_queries_per_minute}/min per client, burst "
            f"{sec.rate_limit_burst}, per /{params.ipv4_prefix} (IPv4) and "
            f"/{params.ipv6_prefix} (IPv6), {len(params.trusted_networks)} trusted networks; "
            f"limited requests: {kod}; table of {params.max_clients} clients"
        )
    if sec.enable_ddos_protection:
        if params is None:
            notes.append(
                "enable_ddos_protection: no effect without enable_rate_limiting "
                "(it bounds how fast new clients enter the rate limiter's table)"
            )
        elif params.max_new_clients_per_second:
            notes.append(
                "enable_ddos_protection: new clients enter the rate-limit table at most "
                f"{params.max_new_clients_per_second:g}/s (network.max_connections_per_second)"
            )
        else:
            notes.append(
                "enable_ddos_protection: network.max_connections_per_second is 0, so new "
                "clients are admitted without limit"
            )
    notes.append(
        "max_connections_per_ip, connection_timeout: reserved for NTS-KE (TCP); "
        "no effect on UDP NTP"
    )
    if keys is None:
        notes.append("authentication: no key file loaded")
    else:
        trusted = sorted(sec.trusted_keys) if sec.trusted_keys else "all"
        notes.append(
            f"authentication: {len(keys)} keys loaded, trusted: {trusted}; "
            + (
                "unauthenticated requests refused"
                if sec.enable_authentication
                else "unauthenticated requests answered"
            )
            + f"; bad MACs get {sec.auth_failure_response}"
        )
        missing = keys.with_trusted(sec.trusted_keys or None).missing_trusted()
        if missing:
            notes.append(f"warning: trusted_keys {missing} are not in the key file")
    return notes
