"""The cost benchmark's stack (not product code): what ``make run`` starts, metered.

As the default cloud profile deploys it: no Redis (``cdk deploy`` without ``redis_url`` runs on
DynamoDB alone), the functions' memory as the CDK app configures it, Powertools logging at INFO and
metrics on (their output is what CloudWatch Logs would ingest). Every AWS client call of the process
and every byte the handlers print is counted into the emulator's usage meter (local/cost/meter.py),
read with ``GET /_emulator/usage``.

    python -m local.cost._stack --state-dir DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import cast

from infra.constants import FunctionName
from infra.constructs.functions import SPECS
from local.bench._stack import serve_adjusted
from local.cost.meter import CountingStream, instrument_aws_clients
from local.emulator.config import ApiConfig
from local.emulator.usage import Usage


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.cost._stack")
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    usage = Usage()
    # Before any handler module creates its logger: Powertools logs to the sys.stdout it finds then.
    sys.stdout = CountingStream(sys.stdout, usage)
    logging.basicConfig(level=logging.WARNING)
    instrument_aws_clients(usage)

    def billed_memory(config: ApiConfig) -> ApiConfig:
        # The memory each function has in AWS (infra/constructs/functions.py): the meter bills it.
        functions = {
            name: function.model_copy(update={"memory_mb": SPECS[_spec_name(function.handler)].memory_mb})
            for name, function in config.functions.items()
        }
        return config.model_copy(update={"functions": functions})

    serve_adjusted(args.state_dir, billed_memory, usage=usage, start_redis=False)


def _spec_name(handler: str) -> FunctionName:
    """``functions.<name>.handler:handler`` -> ``<name>``."""
    return cast(FunctionName, handler.split(".")[1])


if __name__ == "__main__":
    main()
