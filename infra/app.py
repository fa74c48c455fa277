"""CDK entry point: ``cdk synth -c env=dev`` (cdk.json runs ``.venv/bin/python -m infra.app``).

Context (all optional; see docs/deploy.md): env (dev|prod), redis_url, llm_provider, llm_base_url,
llm_model, llm_api_key_secret, opensearch_endpoint + opensearch_domain_arn, apigw_cloudwatch_role.
The model gateway (README "Hybrid cloud with vLLM"): llm_client_cert_secret, llm_api_version,
llm_fallbacks, bedrock_models, sagemaker_endpoints, model_secrets_prefix, vpc_id + vpc_subnet_ids +
onprem_cidrs (+ onprem_ports, vpc_security_group_id, nat_public_subnet_id + nat_route_table_ids).
Knowledge models: embedding_* / reranker_* and rebuild_embedding. Operations: generate_reserved_concurrency,
alarm_email.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# This machine's Node 20 is past jsii's support window; the banner would drown every synth's output.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.bundling.python_assets import PythonBundler  # noqa: E402
from infra.config import DeployConfig  # noqa: E402
from infra.constants import stack_name  # noqa: E402
from infra.stack import KefuStack  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_app(
    context: dict[str, object] | None = None,
    *,
    outdir: str | None = None,
    bundler: PythonBundler | None = None,
) -> tuple[cdk.App, KefuStack]:
    """The app with its one stack and cdk-nag's AWS Solutions checks (tests call this too).

    cdk.json's context (feature flags) applies here too, so a test synth and ``cdk synth`` build the
    same template; ``context`` adds to it (the CLI's own ``-c`` values still win when it runs the app).
    """
    defaults = json.loads((REPO_ROOT / "cdk.json").read_text()).get("context", {})
    app = cdk.App(context={**defaults, **(context or {})}, outdir=outdir)
    config = DeployConfig.from_context(app.node)
    stack = KefuStack(
        app,
        stack_name(config.env),
        stack_name=stack_name(config.env),
        description=f"kefu AI customer service ({config.env})",
        config=config,
        bundler=bundler or PythonBundler(repo_root=REPO_ROOT),
        # Environment-agnostic: deploys to the account and region of the deploying credentials,
        # and the template is the same whoever synthesizes it.
    )
    # cdk-nag 3 is a policy-validation plugin: an unacknowledged error-level finding fails the synth.
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app, stack


def main() -> None:
    app, _stack = build_app()
    app.synth()


if __name__ == "__main__":
    main()
