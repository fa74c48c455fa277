"""Benchmark stack (not product code): what ``make run`` starts (moto, redis-server, the emulator with
the real handlers, the admin API, the demo tenant), with the SQS -> generate mapping allowed more
concurrent batches than the runner's 8, so the concurrency sweep measures the pipeline rather than
that setting (a real event source mapping scales to hundreds of concurrent invocations).

    python -m local.bench._stack --state-dir DIR --max-concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import local.run as runner
from local.emulator.config import ApiConfig
from local.services import free_port
from shared.settings import Settings


def serve_adjusted(state_dir: Path, adjust: Callable[[ApiConfig], ApiConfig]) -> None:
    """Run what ``make run`` runs, with the emulator's API config passed through ``adjust`` first."""
    standard = runner.api_config

    def api_config(settings: Settings, queue_url: str, upload_events_url: str | None = None) -> ApiConfig:
        return adjust(standard(settings, queue_url, upload_events_url))

    runner.api_config = api_config
    stack = runner.LocalStack(http_port=free_port(), ws_port=free_port(), state_dir=state_dir.resolve())
    try:
        stack.start_services()
        asyncio.run(runner.serve(stack, seed=True))
    finally:
        stack.stop_services()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bench._stack")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--max-concurrency", type=int, default=64)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    def more_concurrency(config: ApiConfig) -> ApiConfig:
        mappings = [
            m.model_copy(update={"max_concurrency": args.max_concurrency}) for m in config.event_source_mappings
        ]
        return config.model_copy(update={"event_source_mappings": mappings})

    serve_adjusted(args.state_dir, more_concurrency)


if __name__ == "__main__":
    main()
