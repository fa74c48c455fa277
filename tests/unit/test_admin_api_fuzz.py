"""schemathesis on the admin API's OpenAPI document (issue 11): generated requests to every operation,
with the platform key, over the in-memory world of the isolation suite, never get a 5xx. A short,
derandomized run here (the same examples every time); the issue's attack ran 2,938 cases."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from tests.unit.admin_support import ADMIN_KEY
from tests.unit.test_security_isolation import ATTACKER, app, world  # noqa: F401  (fixtures)

schema = schemathesis.pytest.from_fixture("admin_schema")


@pytest.fixture
def admin_schema(app: FastAPI) -> schemathesis.BaseSchema:  # noqa: F811
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=12, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_admin_operation_answers_a_server_error(case: schemathesis.Case) -> None:
    if case.path_parameters and "tenant_id" in case.path_parameters:
        case.path_parameters["tenant_id"] = ATTACKER  # an existing tenant: past the 404, into the handlers
    response = case.call(headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )
