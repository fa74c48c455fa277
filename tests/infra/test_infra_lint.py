"""cfn-lint on the template of every synthesized profile, and in every region the docs promise.

The profiles are conftest.py's session fixtures (each synthesized once for the whole infra run);
cfn-lint runs in-process, so its schemas load once. Errors fail; warnings are reported by cfn-lint's
CLI but are not failures (CDK's own dependsOn style trips W3005).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, Match, lint_file

from infra.constants import DEPLOY_REGIONS
from tests.infra.profiles import PROFILES
from tests.infra.synthesis import Synth


def _template(synth: Synth) -> Path:
    [template] = synth.outdir.glob("*.template.json")
    return template


def _errors(template: Path, regions: tuple[str, ...]) -> list[Match]:
    matches = lint_file(template, config=ManualArgs(regions=list(regions)))
    return [match for match in matches if match.rule.severity == "error"]


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_passes_cfn_lint(profile: str, request: pytest.FixtureRequest) -> None:
    # Given a profile's synthesized template / When cfn-lint checks it (schemas, references, values)
    errors = _errors(_template(request.getfixturevalue(profile)), ("us-east-1",))
    # Then there is no error
    assert not errors, _report(errors)


def test_the_default_profile_exists_in_every_deploy_region(dev: Synth, prod: Synth) -> None:
    # The other profiles add only types every region has (IAM statements, EC2 routes, an EIP, a NAT
    # gateway, a security group), so the default's resource types decide where kefu deploys.
    assert {r["Type"] for r in prod.resources.values()} == {r["Type"] for r in dev.resources.values()}
    errors = _errors(_template(dev), DEPLOY_REGIONS)
    assert not errors, _report(errors)


def _report(errors: list[Match]) -> str:
    return "\n".join(f"{m.rule.id} {m.message} ({m.path_string})" for m in errors[:30])


def test_regions_outside_the_list_are_caught(opensearch: Synth) -> None:
    # The region check is live: a region without OpenSearch Serverless fails retrieval=opensearch.
    errors = _errors(_template(opensearch), ("af-south-1",))
    assert {m.rule.id for m in errors} == {"E3006"}
    assert all("OpenSearchServerless" in m.message for m in errors)


def test_the_deploy_guide_lists_exactly_the_checked_regions() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deploy.md").read_text()
    section = guide.split("## Regions", 1)[1].split("\n## ", 1)[0]
    [listed] = [line for line in section.splitlines() if line.startswith("us-east-1")]
    assert tuple(region.strip(" .") for region in listed.split(",")) == DEPLOY_REGIONS
