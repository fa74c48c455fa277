"""The e2e suite drives `python -m local.run` (what `make run` starts) with real WebSocket and HTTP clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import LocalStackInfo

ROOT = Path(__file__).resolve().parents[2]


def start_local_run(
    state_dir: Path, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[bytes], Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    # Every visitor of these suites comes from 127.0.0.1: per-address limits would make the order of
    # tests matter (the limits themselves are tested in tests/unit/test_rate_limits.py).
    env |= {"KEFU_RATE_ADDRESS_MESSAGES_PER_MINUTE": "0", "KEFU_RATE_ADDRESS_HANDOFFS_PER_10_MINUTES": "0"}
    env |= {"KEFU_RATE_ADDRESS_CONNECTIONS_PER_MINUTE": "0"}
    env.update(extra_env or {})
    log = (state_dir / "run.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "local.run", "--port", "0", "--state-dir", str(state_dir), *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, log


def wait_for_local_json(process: subprocess.Popen[bytes], state_dir: Path, timeout: float = 120) -> dict[str, Any]:
    target = state_dir / "local.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.exists():
            info = dict(json.loads(target.read_text()))
            if info.get("pid") == process.pid:  # not the file an earlier run left
                return info
        if process.poll() is not None:
            break
        time.sleep(0.2)
    log = (state_dir / "run.log").read_text(errors="replace")[-4000:]
    raise RuntimeError(f"local.run did not come up (exit {process.poll()}):\n{log}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def running_stack(state_dir: Path, extra_env: dict[str, str] | None = None) -> Iterator[LocalStackInfo]:
    """`python -m local.run` in a child process, stopped (and checked for a clean exit) afterwards."""
    process, log = start_local_run(state_dir, extra_env)
    try:
        yield LocalStackInfo.model_validate(wait_for_local_json(process, state_dir))
    finally:
        stop(process)
        log.close()
    assert process.returncode == 0, (state_dir / "run.log").read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackInfo]:
    with running_stack(tmp_path_factory.mktemp("kefu-local")) as info:
        yield info
