"""Which addresses an HTTP model endpoint may reach (tenants choose their own endpoints).

The instance metadata service (169.254.169.254, fd00:ec2::254), the Lambda Runtime API
(127.0.0.1:9001) and other host-local services must stay out of reach, however the address is
spelled: ``http://2852039166/v1`` (a decimal IPv4), ``[::ffff:169.254.169.254]`` (IPv4-mapped IPv6),
``169.254.169.254.nip.io`` (a name that resolves there). Two checks:

- ``check_host`` (shared/addresses.py) when a configuration is saved: literal addresses in every notation ``inet_aton``
  accepts, and IPv6 forms that embed an IPv4 address;
- ``GuardedBackend`` when a connection is made: the host is resolved, every address it resolves to is
  checked, and the socket connects to a checked address (no second lookup a DNS rebinding could
  change).

Private ranges stay allowed: an on-premises vLLM over a VPN is the point of hybrid deployments.
Loopback is refused unless ``Settings.model_endpoint_allow_loopback`` (``make run`` sets it: a local
Ollama lives on localhost; nothing a model needs listens on a Lambda's loopback).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx

from shared.addresses import refusal

Resolver = Callable[..., list[Any]]


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, resolving and checking the host before it connects."""

    def __init__(self, *, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo) -> None:
        self._allow_loopback = allow_loopback
        self._resolve = resolve

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            found = self._resolve(host, port, type=socket.SOCK_STREAM)
        except OSError as error:
            raise httpcore.ConnectError(f"cannot resolve {host}: {error}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found))
        for address in addresses:
            reason = refusal(address, allow_loopback=self._allow_loopback)
            if reason:
                raise httpcore.ConnectError(
                    f"{host} resolves to a {reason} address ({address}); model endpoints may not connect there"
                )
        if not addresses:
            raise httpcore.ConnectError(f"cannot resolve {host}")
        return super().connect_tcp(str(addresses[0]), port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over ``GuardedBackend`` (TLS still verifies the endpoint's own name)."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None, allow_loopback: bool, resolve: Resolver = socket.getaddrinfo
    ) -> None:
        super().__init__()
        context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            network_backend=GuardedBackend(allow_loopback=allow_loopback, resolve=resolve),
        )
