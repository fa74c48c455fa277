"""The StateStore contract (tests/support/state_store_contract.py) on the in-memory fake the unit
tests use; tests/integration/test_state_store_contract.py runs the same suite on DynamoDB."""

import pytest

from tests.support.state_store_contract import StateStoreContract
from tests.unit.fakes import InMemoryStateStore


class TestInMemoryStateStore(StateStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryStateStore:
        return InMemoryStateStore()
