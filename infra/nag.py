"""Acknowledging cdk-nag findings: one call per finding, always with the reason it does not apply.

cdk-nag 3 reports through CDK's policy validation (``Validations``): an acknowledgment applies to the
construct it is made on and everything under it. Wildcard findings are acknowledged one by one as
``RuleId[Finding]`` (e.g. ``AwsSolutions-IAM5[Resource::*]``), never the whole rule.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str, *, findings: tuple[str, ...] = ()) -> None:
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    for rule_id in ids:
        cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))


def arn_finding(scope: IConstruct, service: str, resource: str) -> str:
    """How cdk-nag spells an ARN built with ``Stack.format_arn``: pseudo parameters as ``<AWS::...>``,
    region and account as values when the stack has a concrete environment."""
    stack = cdk.Stack.of(scope)
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    return f"Resource::arn:<AWS::Partition>:{service}:{region}:{account}:{resource}"
