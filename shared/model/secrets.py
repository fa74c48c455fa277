"""Secrets the model adapters need (API keys, client certificates), read from Secrets Manager by
reference when a model is built (so at cold start, or when a tenant's configuration changes).

Values are kept in memory for ``ttl_seconds`` so a rotated secret is picked up without a redeploy;
they are never logged or returned by any API.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from shared.errors import KefuError


class SecretUnavailable(KefuError):
    """A referenced secret cannot be read (missing, no permission, wrong format)."""

    code = "secret_unavailable"


class SecretResolver(ABC):
    @abstractmethod
    def get(self, reference: str) -> str:
        """The secret's string value; raises SecretUnavailable."""


class SecretsManagerResolver(SecretResolver):
    def __init__(
        self, client_factory: Callable[[], Any], ttl_seconds: float = 900, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._ttl = ttl_seconds
        self._clock = clock
        self._values: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, reference: str) -> str:
        with self._lock:
            cached = self._values.get(reference)
            if cached is not None and self._clock() - cached[1] < self._ttl:
                return cached[0]
            if self._client is None:
                self._client = self._client_factory()
            client = self._client
        try:
            response = client.get_secret_value(SecretId=reference)
        except Exception as exc:  # botocore ClientError and connection errors alike
            code = getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__
            raise SecretUnavailable(f"cannot read secret {reference!r}: {code}") from None
        value = response.get("SecretString")
        if not isinstance(value, str) or not value:
            raise SecretUnavailable(f"secret {reference!r} has no string value")
        with self._lock:
            self._values[reference] = (value, self._clock())
        return value


class StaticSecrets(SecretResolver):
    """Secrets given in code (tests, or a deployment without Secrets Manager)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)

    def get(self, reference: str) -> str:
        try:
            return self._values[reference]
        except KeyError:
            raise SecretUnavailable(f"cannot read secret {reference!r}: ResourceNotFoundException") from None


def client_certificate_context(secret_value: str) -> ssl.SSLContext:
    """An SSL context presenting a client certificate (mTLS), from a JSON secret with ``certificate``
    and ``privateKey`` (PEM) and optionally ``caBundle`` (PEM of the CA that signed the server's
    certificate; without it the system's trusted CAs apply)."""
    try:
        document = json.loads(secret_value)
    except ValueError:
        raise SecretUnavailable("the client certificate secret must be JSON with certificate and privateKey") from None
    if not isinstance(document, dict) or not all(
        isinstance(document.get(key), str) and document[key].strip() for key in ("certificate", "privateKey")
    ):
        raise SecretUnavailable("the client certificate secret needs 'certificate' and 'privateKey' (PEM)")
    ca_bundle = document.get("caBundle")
    try:
        context = ssl.create_default_context(cadata=ca_bundle if isinstance(ca_bundle, str) and ca_bundle else None)
    except ssl.SSLError as exc:
        raise SecretUnavailable(f"the client certificate secret's caBundle is not valid PEM: {exc.reason}") from None
    # ssl loads a certificate chain only from files: write them to a private directory, load, delete.
    with tempfile.TemporaryDirectory(prefix="kefu-mtls-") as directory:
        os.chmod(directory, 0o700)
        cert_path = os.path.join(directory, "client.pem")
        key_path = os.path.join(directory, "client.key")
        for path, text in ((cert_path, document["certificate"]), (key_path, document["privateKey"])):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
        try:
            context.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise SecretUnavailable(
                f"the client certificate or key is not valid PEM (or they do not match): {exc.reason}"
            ) from None
    return context
