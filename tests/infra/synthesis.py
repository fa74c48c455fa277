"""Synthesizing the app in tests, and reading the synthesized template."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import assertions  # noqa: E402

from infra.app import REPO_ROOT, build_app  # noqa: E402
from infra.bundling.python_assets import PythonBundler  # noqa: E402
from infra.constants import FunctionName, resource_name  # noqa: E402

SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


@dataclass
class Synth:
    template: assertions.Template
    resources: dict[str, dict[str, Any]]
    outputs: dict[str, Any]
    outdir: Path
    env: str
    bundler: PythonBundler

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == cfn_type}

    def function_id(self, name: FunctionName) -> str:
        wanted = resource_name(self.env, name)  # type: ignore[arg-type]
        for lid, res in self.of_type("AWS::Lambda::Function").items():
            if res["Properties"].get("FunctionName") == wanted:
                return lid
        raise KeyError(name)

    def function(self, name: FunctionName) -> dict[str, Any]:
        return self.resources[self.function_id(name)]

    def role_id(self, name: FunctionName) -> str:
        role_ref = self.function(name)["Properties"]["Role"]
        return str(role_ref["Fn::GetAtt"][0])

    def statements(self, name: FunctionName) -> list[dict[str, Any]]:
        """Every IAM statement the function's role has: inline policies and attached AWS::IAM::Policy."""
        role_id = self.role_id(name)
        found: list[dict[str, Any]] = []
        for policy in self.resources[role_id]["Properties"].get("Policies", []):
            found += policy["PolicyDocument"]["Statement"]
        for res in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role_id} in res["Properties"].get("Roles", []):
                found += res["Properties"]["PolicyDocument"]["Statement"]
        return found

    def actions(self, name: FunctionName) -> set[str]:
        return {action for statement in self.statements(name) for action in _as_list(statement["Action"])}

    def asset_dir(self, code: dict[str, Any]) -> Path:
        """The staged directory of a Lambda Code/Content property (``S3Key: <hash>.zip``)."""
        return self.outdir / f"asset.{code['S3Key'].removesuffix('.zip')}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def synthesize(context: dict[str, Any], outdir: Path, bundler: PythonBundler | None = None) -> Synth:
    bundler = bundler or PythonBundler(repo_root=REPO_ROOT)
    app, stack = build_app(context, outdir=str(outdir), bundler=bundler)
    assembly = app.synth()  # raises when cdk-nag reports an unacknowledged error
    template_json = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    del assembly
    return Synth(
        template=assertions.Template.from_json(template_json),
        resources=template_json["Resources"],
        outputs=template_json.get("Outputs", {}),
        outdir=outdir,
        env=str(context.get("env", "dev")),
        bundler=bundler,
    )
