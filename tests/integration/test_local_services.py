"""The local runner's redis-server never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_redis_server_dies_when_its_starter_is_killed() -> None:
    code = (
        "from local.services import RedisServer; server = RedisServer().start(); "
        "print(server._process.pid, flush=True); import time; time.sleep(120)"
    )
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert starter.stdout is not None
    redis_pid = int(starter.stdout.readline())
    assert _running(redis_pid)
    starter.kill()  # no cleanup code runs
    starter.wait()
    deadline = time.monotonic() + 5
    while _running(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = _running(redis_pid)
    if survived:  # keep the machine clean even when the test fails
        os.kill(redis_pid, 9)
    assert not survived
