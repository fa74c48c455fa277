"""Tenants' channel credentials (AppSecret, corpsecret, EncodingAESKey, webhook secrets) in Secrets
Manager, one secret per tenant and name (``<prefix>/<tenantId>/<name>``). The admin API writes them and
never reads them back; only the channel adapters read them, by name."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from shared.channels.base import ChannelError

SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SecretMissing(ChannelError):
    """The named tenant secret does not exist (or cannot be read)."""


class SecretStoreUnavailable(ChannelError):
    """Secrets Manager failed (no permission, throttled, unreachable): the caller may try again."""


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code") or type(exc).__name__)


class TenantSecrets(ABC):
    @abstractmethod
    def put(self, tenant_id: str, name: str, value: str) -> None:
        """Create or replace the secret."""

    @abstractmethod
    def get(self, tenant_id: str, name: str) -> str:
        """The value; raises ``SecretMissing``."""

    @abstractmethod
    def exists(self, tenant_id: str, name: str) -> bool: ...


class SecretsManagerTenantSecrets(TenantSecrets):
    def __init__(self, client_factory: Callable[[], Any], prefix: str = "kefu/tenants") -> None:
        self._client_factory = client_factory
        self._client: Any = None
        self._prefix = prefix.rstrip("/")

    def _sm(self) -> Any:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def secret_id(self, tenant_id: str, name: str) -> str:
        return f"{self._prefix}/{tenant_id}/{name}"

    def put(self, tenant_id: str, name: str, value: str) -> None:
        client = self._sm()
        secret_id = self.secret_id(tenant_id, name)
        try:
            try:
                client.put_secret_value(SecretId=secret_id, SecretString=value)
            except client.exceptions.ResourceNotFoundException:
                tags = [{"Key": "kefu:tenant", "Value": tenant_id}]
                client.create_secret(Name=secret_id, SecretString=value, Tags=tags)
        except Exception as exc:  # botocore errors and connection failures alike; the value is never logged
            raise SecretStoreUnavailable(f"cannot store tenant secret {name!r} ({_code(exc)})") from None

    def get(self, tenant_id: str, name: str) -> str:
        client = self._sm()
        try:
            value = client.get_secret_value(SecretId=self.secret_id(tenant_id, name)).get("SecretString")
        except Exception as exc:  # not found, no permission, unreachable: all mean "cannot use it"
            raise SecretMissing(f"tenant secret {name!r} cannot be read ({_code(exc)})") from None
        if not isinstance(value, str) or not value:
            raise SecretMissing(f"tenant secret {name!r} is empty")
        return value

    def exists(self, tenant_id: str, name: str) -> bool:
        client = self._sm()
        try:
            client.describe_secret(SecretId=self.secret_id(tenant_id, name))
        except client.exceptions.ResourceNotFoundException:
            return False
        except Exception as exc:
            raise SecretStoreUnavailable(f"cannot check tenant secret {name!r} ({_code(exc)})") from None
        return True
