"""`make run` keeps its state across restarts, and two runs never share (or wipe) one state folder.

Each test starts `python -m local.run` several times on one state directory, as a developer does
with Ctrl-C and `make run` again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.client import LocalStackInfo, ask, connect_agent, open_visitor, send_message
from tests.e2e.conftest import ROOT, start_local_run, stop, wait_for_local_json

pytestmark = pytest.mark.e2e

DOCUMENTS = [
    {"id": "tyres", "title": "Tyre pressure", "text": "Road bikes need 80 to 100 psi; check weekly."},
    {"id": "chains", "title": "Chain care", "text": "Clean and oil the chain every 300 km."},
]


def start(state_dir: Path, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    process, log = start_local_run(state_dir, args=args)
    log.close()  # the child holds its own copy
    try:
        return process, wait_for_local_json(process, state_dir)
    except BaseException:
        stop(process)
        raise


def agent_handshake_status(ws_url: str, key: str) -> int:
    async def attempt() -> int:
        try:
            async with connect_agent(ws_url, key):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    return asyncio.run(attempt())


def search(info: dict[str, Any], tenant: str, query: str) -> list[dict[str, Any]]:
    with LocalStackInfo.model_validate(info).admin() as admin:
        response = admin.get(f"/v1/tenants/{tenant}/knowledge/search", params={"q": query})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def transcript(info: dict[str, Any], tenant: str, conversation: str) -> list[str]:
    with LocalStackInfo.model_validate(info).admin() as admin:
        response = admin.get(f"/v1/tenants/{tenant}/conversations/{conversation}/messages")
    assert response.status_code == 200, response.text
    return [message["text"] for message in response.json()["messages"]]


def chat(info: dict[str, Any], tenant: str, widget_key: str, visitor: str, question: str) -> list[dict[str, Any]]:
    url = f"{info['ws_url']}?{httpx.QueryParams(tenant=tenant, key=widget_key, visitor=visitor)}"

    async def scenario() -> list[dict[str, Any]]:
        async with await open_visitor(url) as ws:
            return await ask(ws, send_message(question), timeout=60)

    return asyncio.run(scenario())


def test_everything_survives_a_restart_and_a_second_run_is_refused(tmp_path: Path) -> None:
    first, info = start(tmp_path)
    try:
        with LocalStackInfo.model_validate(info).admin() as admin:
            tenant = admin.post("/v1/tenants", json={"name": "Bike shop"}).json()
            indexed = admin.post(f"/v1/tenants/{tenant['tenantId']}/knowledge", json={"documents": DOCUMENTS})
            assert indexed.status_code == 200, indexed.text
            agent = admin.post(f"/v1/tenants/{tenant['tenantId']}/agents", json={"name": "Carol"}).json()
        before = search(info, tenant["tenantId"], "how much air in tyres")
        assert before and before[0]["documentId"] == "tyres"
        frames = chat(info, tenant["tenantId"], tenant["widgetKey"], "visitor-restart-1", "tyre pressure?")
        assert frames[-1]["type"] == "answer.end", frames
        conversation = frames[0]["conversationId"]

        # A second run on the same folder stops before touching anything, and says why.
        second = subprocess.run(
            [sys.executable, "-m", "local.run", "--port", "0", "--state-dir", str(tmp_path)],
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if not k.startswith("KEFU_")},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 1
        assert "in use by a running kefu" in second.stderr and str(first.pid) in second.stderr
        assert search(info, tenant["tenantId"], "how much air in tyres") == before  # the first run is intact
    finally:
        stop(first)
    assert first.returncode == 0

    restarted, again = start(tmp_path)
    try:
        for name in ("admin_key", "tenant_id", "widget_key", "agent_key", "agents"):
            assert again[name] == info[name], name  # same keys, demo tenant not duplicated
        assert search(again, tenant["tenantId"], "how much air in tyres") == before
        assert transcript(again, tenant["tenantId"], conversation) == ["tyre pressure?", frames[-1]["text"]]
        assert agent_handshake_status(again["ws_url"], agent["agentKey"]) == 101  # the agent's key still logs in
        assert agent_handshake_status(again["ws_url"], again["agent_key"]) == 101
        with LocalStackInfo.model_validate(again).admin() as admin:
            agents = admin.get(f"/v1/tenants/{again['tenant_id']}/agents").json()["agents"]
        assert len(agents) == 2  # the demo agents were not created twice
        later = chat(again, tenant["tenantId"], tenant["widgetKey"], "visitor-restart-1", "chain care?")
        assert later[-1]["type"] == "answer.end", later
    finally:
        stop(restarted)
    assert restarted.returncode == 0


def wait_for_snapshot_after(state_file: Path, moment: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state_file.exists() and state_file.stat().st_mtime > moment:
            return
        time.sleep(0.2)
    raise AssertionError(f"{state_file} was not written within {timeout} s of a change")


def test_a_killed_run_loses_nothing_already_snapshotted_and_fresh_starts_empty(tmp_path: Path) -> None:
    first, info = start(tmp_path)
    try:
        with LocalStackInfo.model_validate(info).admin() as admin:
            tenant = admin.post("/v1/tenants", json={"name": "Killed shop"}).json()
        frames = chat(info, info["tenant_id"], info["widget_key"], "visitor-killed-1", "How long does delivery take?")
        assert frames[-1]["type"] == "answer.end", frames
        wait_for_snapshot_after(tmp_path / "moto-state.pickle", time.time())
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # no shutdown code runs, in the runner or in moto
        first.wait()

    restarted, again = start(tmp_path)
    try:
        assert again["admin_key"] == info["admin_key"] and again["tenant_id"] == info["tenant_id"]
        conversation = frames[0]["conversationId"]
        expected = ["How long does delivery take?", frames[-1]["text"]]
        assert transcript(again, info["tenant_id"], conversation) == expected
        with LocalStackInfo.model_validate(again).admin() as admin:
            assert admin.get(f"/v1/tenants/{tenant['tenantId']}/config").status_code == 200
    finally:
        stop(restarted)

    fresh, empty = start(tmp_path, "--fresh")
    try:
        assert empty["admin_key"] != info["admin_key"] and empty["tenant_id"] != info["tenant_id"]
        with LocalStackInfo.model_validate(empty).admin() as admin:
            assert admin.get(f"/v1/tenants/{tenant['tenantId']}/config").status_code == 404
            assert admin.get(f"/v1/tenants/{info['tenant_id']}/config").status_code == 404
        assert search(empty, empty["tenant_id"], "How long does delivery take?")  # the new demo's knowledge
    finally:
        stop(fresh)
    assert fresh.returncode == 0
