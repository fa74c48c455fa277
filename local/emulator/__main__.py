"""``python -m local.emulator api.json``: run the emulator for an ApiConfig written as JSON."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from local.emulator.config import ApiConfig
from local.emulator.emulator import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.emulator", description=__doc__)
    parser.add_argument("config", type=Path, help="ApiConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ws-port", type=int, default=8701)
    parser.add_argument("--http-port", type=int, default=8700)
    args = parser.parse_args(argv)
    try:
        config = ApiConfig.model_validate_json(args.config.read_text())
    except OSError as exc:
        print(f"cannot read {args.config}: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"invalid config {args.config}:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    emulator = Emulator(config, host=args.host, ws_port=args.ws_port, http_port=args.http_port)
    asyncio.run(_serve_until_signal(emulator))
    return 0


async def _serve_until_signal(emulator: Emulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, stop.set)
    async with emulator:
        await stop.wait()


if __name__ == "__main__":
    sys.exit(main())
