"""Which addresses a tenant's model endpoint may name (the checks shared/model/endpoint_guard.py applies
again at every connection): no instance metadata service, Lambda Runtime API or other host-local
service, however the address is spelled. No HTTP library here: a configuration is checked when it is
saved, by code that never connects."""

from __future__ import annotations

import ipaddress
import socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def literal_address(host: str) -> Address | None:
    """The address a host names literally (any notation the C library would connect to), else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    try:
        # inet_aton takes what URL parsers pass on: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = address.packed
    if packed[:12] == bytes(12) and packed[12:] != bytes(4):  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    if packed[:12] == bytes.fromhex("0064ff9b0000000000000000"):  # NAT64 64:ff9b::a.b.c.d
        return ipaddress.IPv4Address(packed[12:])
    return None


def refusal(address: Address, *, allow_loopback: bool) -> str | None:
    """Why a model endpoint may not connect to ``address`` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and not address.is_loopback:  # ::1 is not ::0.0.0.1
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded, allow_loopback=allow_loopback)
    if address.is_link_local:
        return "link-local"
    if address.is_loopback:
        return None if allow_loopback else "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    return None


def check_host(host: str, *, allow_loopback: bool) -> None:
    """Raise ValueError when ``host`` literally names an address a model endpoint may not reach."""
    if not allow_loopback and host.strip("[]").rstrip(".").lower() in ("localhost", "localhost.localdomain"):
        raise ValueError("'endpoint' must not be a loopback address")
    address = literal_address(host)
    if address is None:
        return
    reason = refusal(address, allow_loopback=allow_loopback)
    if reason:
        raise ValueError(f"'endpoint' must not be a {reason} address ({address})")
