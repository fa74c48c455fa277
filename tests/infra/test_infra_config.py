"""Operations context (NAT, reserved concurrency, alarm e-mail): bad values fail the synth with a reason."""

from __future__ import annotations

import re

import aws_cdk as cdk
import pytest

from infra.config import ConfigError, DeployConfig
from tests.infra.profiles import HYBRID

_PRIVATE_SUBNET = HYBRID["vpc_subnet_ids"].split(",")[0]
_VPC = {key: HYBRID[key] for key in ("vpc_id", "vpc_subnet_ids", "onprem_cidrs")}


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"generate_reserved_concurrency": "0"}, "must be at least 1"),
        ({"generate_reserved_concurrency": "ten"}, "'generate_reserved_concurrency' must be a number"),
        ({"alarm_email": "oncall"}, "'alarm_email' must be an e-mail address"),
        ({"nat_public_subnet_id": "subnet-0ccccccccccccccc3"}, "the NAT options need 'vpc_id'"),
        ({**_VPC, "nat_public_subnet_id": "subnet-0ccccccccccccccc3"}, "needs both 'nat_public_subnet_id'"),
        ({**_VPC, "nat_route_table_ids": "rtb-0aaaaaaaaaaaaaaa1"}, "needs both 'nat_public_subnet_id'"),
        (
            {**_VPC, "nat_public_subnet_id": _PRIVATE_SUBNET, "nat_route_table_ids": "rtb-0a1b2c3d"},
            "must be a public subnet",
        ),
        (
            {**_VPC, "nat_public_subnet_id": "subnet-0ccccccccccccccc3", "nat_route_table_ids": "main"},
            "'nat_route_table_ids' must be route table ids",
        ),
    ],
)
def test_bad_operations_context_is_refused_with_a_reason(context: dict[str, str], message: str) -> None:
    app = cdk.App(context=context)
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(app.node)


def test_reserved_concurrency_and_nat_are_read_from_context() -> None:
    config = DeployConfig.from_context(cdk.App(context=HYBRID).node)
    assert config.generate_reserved_concurrency == 50
    assert config.creates_nat_gateway
    assert config.nat_route_table_ids == ("rtb-0aaaaaaaaaaaaaaa1", "rtb-0bbbbbbbbbbbbbbb2")
    defaults = DeployConfig.from_context(cdk.App().node)
    assert defaults.generate_reserved_concurrency is None and not defaults.creates_nat_gateway
