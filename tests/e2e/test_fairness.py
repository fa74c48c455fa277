"""A tenant flooded at 10x its generate bound does not starve another tenant (issue 11): the short
version of `make bench`'s fairness part (local/bench/fairness.py), on the real stack with the fixture
model. It asserts outcomes only; the timings are the benchmark's (docs/performance.md)."""

from __future__ import annotations

import pytest

from local.bench.fairness import FLOOD_FACTOR, GROUPS_PER_TENANT, run_once

pytestmark = pytest.mark.e2e


def test_another_tenants_answers_still_arrive_while_one_tenant_floods() -> None:
    outcome = run_once(GROUPS_PER_TENANT, questions=3)
    assert outcome.quiet_errors == 0
    assert len(outcome.alone_ms) == 3 and len(outcome.flooded_ms) == 3  # every question answered, in the flood too
    # The flood was real and was served too, only no faster than its bound allows.
    assert outcome.flood_answers >= FLOOD_FACTOR * GROUPS_PER_TENANT and outcome.flood_errors == 0
