"""cdk-nag (AWS Solutions pack) runs on every synth, and the stack passes it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk import aws_iam as iam

from infra.app import build_app
from infra.bundling.python_assets import PythonBundler
from infra.config import ConfigError, DeployConfig
from tests.infra.synthesis import SKIP_BUNDLING, Synth

ROOT = Path(__file__).resolve().parents[2]


def _report(synth: Synth) -> dict[str, object]:
    report: dict[str, object] = json.loads((synth.outdir / "validation-report.json").read_text())
    return report


def test_dev_stack_has_no_unacknowledged_findings(dev: Synth) -> None:
    # Given the dev synth (it would have raised on an error-level finding)
    report = _report(dev)
    # Then no plugin reported a violation
    assert report["pluginReports"] == [], json.dumps(report, indent=1)[:4000]


def test_variants_have_no_unacknowledged_findings(prod: Synth, existing_domain: Synth, channels_nat: Synth) -> None:
    for synth in (prod, existing_domain, channels_nat):
        assert _report(synth)["pluginReports"] == []


def test_cdk_nag_is_wired_into_the_app(tmp_path: Path) -> None:
    # Given the real app, plus a role with a wildcard permission nobody acknowledged
    app, stack = build_app({"env": "dev", **SKIP_BUNDLING}, outdir=str(tmp_path), bundler=PythonBundler(repo_root=ROOT))
    role = iam.Role(stack, "Sloppy", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))
    # When it is synthesized / Then cdk-nag fails the synth and names the finding
    with pytest.raises(RuntimeError, match="ValidationFailed") as failure:
        app.synth()
    assert "AwsSolutions-IAM5[Resource::*]" in str(failure.value)
    assert "kefu-dev/Sloppy/DefaultPolicy" in str(failure.value)
    assert "kefu-dev/Functions" not in str(failure.value)  # the stack's own findings are acknowledged


def test_every_acknowledgment_has_a_specific_reason() -> None:
    # Every acknowledge(...) call in infra/ gives a reason of more than a few words.
    calls = 0
    for source in (ROOT / "infra").rglob("*.py"):
        text = source.read_text()
        for match in re.finditer(
            r"acknowledge\(\s*[^,]+,\s*\"(AwsSolutions-[A-Z0-9]+)\",\s*((?:f?\"[^\"]*\"\s*)+)", text
        ):
            calls += 1
            reason = " ".join(re.findall(r"\"([^\"]*)\"", match.group(2)))
            assert len(reason.split()) >= 12, (source.name, match.group(1), reason)
    assert calls >= 5


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"env": "staging"}, "must be one of dev, prod"),
        ({"llm_provider": "openai"}, "needs 'llm_base_url'"),
        ({"llm_provider": "vllm"}, "must be one of extractive, openai, azure, bedrock, sagemaker"),
        ({"llm_provider": "bedrock"}, "needs 'llm_model'"),
        ({"llm_provider": "sagemaker"}, "needs 'llm_base_url' (the SageMaker endpoint name)"),
        ({"vpc_id": "vpc-0123abcd"}, "needs 'vpc_subnet_ids'"),
        ({"vpc_id": "vpc-0123abcd", "vpc_subnet_ids": "subnet-0123abcd"}, "needs 'onprem_cidrs'"),
        ({"vpc_id": "vpc-0123abcd", "vpc_subnet_ids": "subnet-0123abcd", "onprem_cidrs": "10.0.0.0/33"}, "CIDRs"),
        ({"vpc_id": "vpc-0123abcd", "vpc_subnet_ids": "subnet-1", "onprem_cidrs": "10.0.0.0/8"}, "subnet ids"),
        ({"onprem_cidrs": "10.0.0.0/8"}, "need 'vpc_id'"),
        ({"onprem_ports": "https"}, "port numbers"),
        ({"llm_fallbacks": '[{"provider": "bedrock"}]'}, "'llm_fallbacks' must be a JSON list of model targets"),
        ({"opensearch_endpoint": "https://x.es.amazonaws.com"}, "needs both"),
        ({"redis_url": "localhost:6379"}, "redis:// or rediss://"),
        ({"apigw_cloudwatch_role": "maybe"}, "must be true or false"),
    ],
)
def test_bad_context_is_refused_with_a_reason(context: dict[str, str], message: str) -> None:
    import aws_cdk as cdk

    app = cdk.App(context=context)
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig.from_context(app.node)
