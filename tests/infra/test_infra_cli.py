"""The pinned CDK CLI (package.json) runs the app and reads its cloud assembly.

Needs ``npm ci`` first (make test does it); skipped when node_modules/.bin/cdk is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.constants import FUNCTIONS

ROOT = Path(__file__).resolve().parents[2]
CDK = ROOT / "node_modules" / ".bin" / "cdk"


def _pinned_version() -> str:
    version: str = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    return version


def test_cli_is_pinned_below_3() -> None:
    # aws-cdk 3.x (npm's latest tag) cannot read the cloud assembly of aws-cdk-lib 2.x.
    major, minor, _patch = _pinned_version().split(".")
    assert major == "2" and int(minor) >= 1148
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == _pinned_version()


@pytest.mark.skipif(not CDK.exists(), reason="node_modules/.bin/cdk missing: run `npm ci`")
def test_pinned_cli_synthesizes_the_app(tmp_path: Path) -> None:
    # Given the pinned CLI / When it synthesizes through cdk.json's app command
    env = {
        **os.environ,
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # A test run sends nothing anywhere (the CLI's telemetry would try to reach the internet).
        "CDK_DISABLE_CLI_TELEMETRY": "true",
    }
    version = subprocess.run([str(CDK), "--version"], cwd=ROOT, capture_output=True, text=True, env=env, check=True)
    assert version.stdout.startswith(_pinned_version())
    result = subprocess.run(
        [str(CDK), "synth", "--quiet", "--no-notices", "-c", "env=dev", "-o", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    # Then it exits 0 and the assembly holds the stack's template
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    template = json.loads((tmp_path / "kefu-dev.template.json").read_text())
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    named = {f["Properties"]["FunctionName"] for f in functions if "FunctionName" in f["Properties"]}
    assert named == {f"kefu-dev-{name}" for name in FUNCTIONS}  # + CDK's BucketDeployment, unnamed
