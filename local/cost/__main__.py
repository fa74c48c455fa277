"""`python -m local.cost` (`make cost`): docs/cost.md, computed.

1. Synthesizes each deployment profile (the CDK app in-process, as tests/infra does, without bundling:
   the resources are the same) and prices the idle floor of its template (local/cost/idle.py).
2. Runs the per-conversation benchmark through the local stack (local/cost/measure.py, ~2 minutes) and
   keeps its counts in docs/cost.json; ``--reuse`` re-renders from the counts already there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
COST_DOC = ROOT / "docs" / "cost.md"
COUNTS = ROOT / "docs" / "cost.json"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
FIRST_DEPLOY = "first-deploy-cost"
DEFAULT_PROFILE = "default"
# A measured lever: the stream's coalescing interval (shared/chat/streaming.py; default 250 ms, 60 ms
# before docs/cost.md showed its price). Each @connections post is a billed WebSocket message.
VARIANTS: dict[str, dict[str, str]] = {"stream_flush_ms=60": {"KEFU_STREAM_FLUSH_MS": "60"}}


def profiles() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Profile name -> CDK context, and a description of each."""
    import tests.infra.profiles as known
    from tests.infra.profiles import CHANNELS_NAT, EXISTING_DOMAIN, HYBRID, PROD
    from tests.infra.synthesis import SKIP_BUNDLING

    contexts = {
        DEFAULT_PROFILE: dict(SKIP_BUNDLING),
        "prod": PROD,
        # The alarm choice of the default profile (infra/constructs/monitoring.py): dev's default is essential.
        "alarms_full": {"alarms": "full", **SKIP_BUNDLING},
        "alarms_none": {"alarms": "none", **SKIP_BUNDLING},
        "existing_domain": EXISTING_DOMAIN,
        "hybrid": HYBRID,
        "channels_nat": CHANNELS_NAT,
    }
    descriptions = {
        DEFAULT_PROFILE: "`cdk deploy` with no context (env dev)",
        "prod": "`-c env=prod` (every alarm, retained resources)",
        "alarms_full": "the default with `-c alarms=full` (every alarm, as prod; default: `essential`, 2 alarms)",
        "alarms_none": "the default with `-c alarms=none` (no alarm; the alarm topic stays)",
        "existing_domain": "an existing OpenSearch domain (billed outside this stack)",
        "hybrid": "generate in a VPC with a NAT gateway, every alarm (README, hybrid cloud)",
        "channels_nat": "the default with `-c channels_egress=nat` (one egress IP for WeChat's and WeCom's allowlists)",
    }
    # OpenSearch Serverless as an option beside the S3-backed index (once that is the default).
    opensearch = getattr(known, "OPENSEARCH", None)
    if opensearch is not None:
        contexts["opensearch"] = opensearch
        descriptions["opensearch"] = "`-c retrieval=opensearch` (an OpenSearch Serverless collection)"
    return contexts, descriptions


def synthesize(context: dict[str, Any]) -> dict[str, Any]:
    from infra.app import build_app

    with tempfile.TemporaryDirectory(prefix="kefu-cost-synth-") as outdir:
        app, stack = build_app(context, outdir=outdir)
        app.synth()
        template: dict[str, Any] = json.loads((Path(outdir) / f"{stack.stack_name}.template.json").read_text())
    return template


def main(argv: list[str] | None = None) -> int:
    from local.bench import update_section
    from local.cost.measure import measure, save
    from local.cost.report import first_deploy_table, render
    from local.cost.uploads import keep_section

    parser = argparse.ArgumentParser(prog="python -m local.cost", description=__doc__)
    parser.add_argument("--reuse", action="store_true", help="use the counts in docs/cost.json, do not re-measure")
    parser.add_argument("--idle-only", action="store_true", help="only the idle floor (no benchmark)")
    parser.add_argument("--conversations", type=int, default=None)
    args = parser.parse_args(argv)
    contexts, descriptions = profiles()
    templates = {}
    for name, context in contexts.items():
        print(f"== synth {name}", flush=True)
        templates[name] = synthesize(context)
    measured: dict[str, Any] | None = None
    if args.reuse and COUNTS.exists():
        measured = json.loads(COUNTS.read_text())
    elif not args.idle_only:
        print("== benchmark", flush=True)
        sizes = {"conversations": args.conversations} if args.conversations else {}
        measured = measure(**sizes)
        measured["variants"] = {}
        for name, settings in VARIANTS.items():
            print(f"== benchmark {name}", flush=True)
            measured["variants"][name] = measure(**sizes, settings=settings, cold=False)
        save(measured, COUNTS)
    document = render(templates, descriptions, measured, DEFAULT_PROFILE)
    # The per-upload section comes from its own benchmark (python -m local.cost.uploads): kept as it was.
    document = keep_section(COST_DOC.read_text(encoding="utf-8") if COST_DOC.exists() else "", document)
    COST_DOC.write_text(document, encoding="utf-8")
    update_section(FIRST_DEPLOY, first_deploy_table(templates, descriptions), DEPLOY_DOC)
    print(document, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
