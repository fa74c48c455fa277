"""What the synthesized templates bill with no traffic (local/cost/idle.py, docs/cost.md).

The default profile (and prod) may hold fixed-cost resources only within ``DEFAULT_ALLOWANCE``: the S3-backed
index has no idle cost; an OpenSearch Serverless collection (``-c retrieval=opensearch``) bills its minimum
OCUs whether or not anything is searched.
"""

from __future__ import annotations

import pytest

from local.cost.idle import (
    DEFAULT_ALLOWANCE,
    PROD_ALLOWANCE,
    UnpricedResource,
    beyond_allowance,
    fixed_costs,
    idle_floor,
)
from local.cost.prices import load_prices
from tests.infra.profiles import PROFILES
from tests.infra.synthesis import Synth

# Profiles that must stay within an allowance (fixed cost by type and in dollars): the default one, and
# prod's, which keeps every alarm.
WITHIN_ALLOWANCE: dict[str, dict[str, int]] = {
    "dev": DEFAULT_ALLOWANCE,
    "existing_domain": DEFAULT_ALLOWANCE,
    "prod": PROD_ALLOWANCE,
}
# Issue 12's goal for the default profile (``cdk deploy`` with no context), at list price.
DEFAULT_IDLE_GOAL_USD = 1.00
COLLECTION = "AWS::OpenSearchServerless::Collection"


def _template(synth: Synth) -> dict[str, object]:
    return {"Resources": synth.resources}


def _allowance_usd(allowance: dict[str, int]) -> float:
    prices = load_prices()
    return (
        allowance["AWS::SecretsManager::Secret"] * prices["secretsmanager"]["secret_month"]
        + allowance["AWS::CloudWatch::Alarm"] * prices["cloudwatch"]["alarm_standard_month"]
        + 0.34  # the generate queue's idle pollers (~$0.33 at 5 pollers)
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_every_resource_type_is_priced(profile: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(profile)
    fixed_costs(_template(synth))  # raises UnpricedResource for a type the calculator does not know


def test_an_unknown_resource_type_fails_the_calculation() -> None:
    template = {"Resources": {"Cache": {"Type": "AWS::ElastiCache::CacheCluster", "Properties": {}}}}
    with pytest.raises(UnpricedResource, match="ElastiCache"):
        fixed_costs(template)


@pytest.mark.parametrize("profile", WITHIN_ALLOWANCE)
def test_fixed_monthly_costs_stay_within_the_allowance(profile: str, request: pytest.FixtureRequest) -> None:
    synth: Synth = request.getfixturevalue(profile)
    template = _template(synth)
    allowance = WITHIN_ALLOWANCE[profile]
    assert beyond_allowance(template, allowance) == {}
    assert idle_floor(template) <= _allowance_usd(allowance)


def test_the_default_profile_idles_under_a_dollar(dev: Synth) -> None:
    # One secret (the admin key), the two essential alarms and the queue's idle pollers, at list price.
    lines = fixed_costs(_template(dev))
    assert sorted(line.cfn_type for line in lines) == [
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Alarm",
        "AWS::Lambda::EventSourceMapping",
        "AWS::SecretsManager::Secret",
    ]
    assert idle_floor(_template(dev)) <= DEFAULT_IDLE_GOAL_USD


def test_the_collection_is_priced_at_its_minimum_ocus(opensearch: Synth) -> None:
    # A dev collection runs without standby replicas: 1 OCU minimum, ~$175 a month.
    [line] = [line for line in fixed_costs(_template(opensearch)) if line.cfn_type == COLLECTION]
    assert line.monthly_usd == pytest.approx(1 * 0.24 * 730)
    assert set(beyond_allowance(_template(opensearch), DEFAULT_ALLOWANCE)) == {COLLECTION}


def test_a_nat_gateway_is_a_fixed_cost(hybrid: Synth) -> None:
    types = {line.cfn_type for line in fixed_costs(_template(hybrid))}
    assert "AWS::EC2::NatGateway" in types
    assert set(beyond_allowance(_template(hybrid), DEFAULT_ALLOWANCE)) >= {"AWS::EC2::NatGateway"}
