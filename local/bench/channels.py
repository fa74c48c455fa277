"""Channels (shared/channels): what a cold start pays to import each adapter, and the per-message
costs the channels function adds (safe-mode verify + decrypt, reply splitting).

Import times are medians of fresh interpreter processes, interleaved so load on the machine hits
every module alike; the baseline is ``import httpx, pydantic`` which every channel module needs anyway.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from local.bench import machine_line

ROOT = Path(__file__).resolve().parents[2]
RUNS = 9

IMPORTS = {
    "baseline: httpx, pydantic": "import httpx, pydantic",
    "shared.channels.wechat_oa": "import shared.channels.wechat_oa",
    "shared.channels.wecom_kf": "import shared.channels.wecom_kf",
    "shared.channels.webhook": "import shared.channels.webhook",
    "shared.channels.dynamodb_state (PynamoDB)": "import shared.channels.dynamodb_state",
    "AES from cryptography (first decrypt)": "from cryptography.hazmat.primitives.ciphers import Cipher",
    "xml.etree.ElementTree (stdlib)": "import xml.etree.ElementTree",
    # The channels function's cold start (its handler module) beside the message function's: what the
    # platform's 5-second deadline must also cover on a cold container.
    "functions.channels.handler": "import functions.channels.handler",
    "functions.message.handler": "import functions.message.handler",
}


def _timed(statement: str) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1]) * 1000


def import_times() -> dict[str, float]:
    runs: dict[str, list[float]] = {name: [] for name in IMPORTS}
    for statement in IMPORTS.values():  # warm the bytecode caches first
        _timed(statement)
    for _ in range(RUNS):
        for name, statement in IMPORTS.items():
            runs[name].append(_timed(statement))
    return {name: statistics.median(values) for name, values in runs.items()}


def _per_call_us(call: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            call()
        best = min(best, (time.perf_counter() - start) / repeat)
    return best * 1e6


def message_costs() -> dict[str, float]:
    from shared.channels.base import InboundRequest
    from shared.channels.replies import split_reply
    from shared.channels.wechat_crypto import WeChatCipher, build_xml, check_signature, parse_xml, signature

    key, app_id, token = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef", "tok"
    cipher = WeChatCipher(key, app_id)
    plain = build_xml(
        {
            "ToUserName": "gh",
            "FromUserName": "o_user",
            "CreateTime": 1700000000,
            "MsgType": "text",
            "Content": "请问退款多久能到账？我上周申请的。",
            "MsgId": 1234567890123456,
        }
    )
    encrypted = cipher.encrypt(plain)
    request = InboundRequest(
        "POST",
        {"msg_signature": signature(token, "1", "n", encrypted)},
        {},
        build_xml({"ToUserName": "gh", "Encrypt": encrypted}).encode(),
    )

    def verify_and_decrypt() -> None:
        fields = parse_xml(request.body)
        check_signature(request.query["msg_signature"], token, "1", "n", fields["Encrypt"])
        parse_xml(cipher.decrypt(fields["Encrypt"]))

    answer = "您的退款会在三到五个工作日内原路退回到您的支付账户。" * 100  # 7,800 bytes
    return {
        "safe-mode message: parse, verify signature, decrypt, parse (µs)": _per_call_us(verify_and_decrypt, 2000),
        "split a 7,800-byte answer under 2,048 bytes (µs)": _per_call_us(lambda: split_reply(answer), 200),
    }


def run() -> str:
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    times = import_times()
    costs = message_costs()
    lines = [
        "## Channels: cold-start imports and per-message costs",
        "",
        f"`python -m local.bench channels`. {machine_line()} Load average at start: {load}.",
        "",
        f"| import (fresh process, median of {RUNS}) | ms |",
        "|---|---|",
        *[f"| `{name}` | {value:.1f} |" for name, value in times.items()],
        "",
        "| per message | value |",
        "|---|---|",
        *[f"| {name} | {value:.1f} |" for name, value in costs.items()],
    ]
    return "\n".join(lines)
