from collections.abc import Iterator

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Unit tests never reach the network: any socket use fails the test."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
