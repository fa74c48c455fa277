"""`python -m local.cost.uploads`: what one presigned upload costs, measured through the local stack.

The metered stack of the per-conversation benchmark (local/cost/_stack.py) ingests files the way
`kefu ingest` sends them: ``POST …/knowledge/uploads``, the presigned POST to (moto's) S3, then a
status poll every ``shared.cli.POLL_SECONDS`` until indexed. The meters count the ingest function's
invocations and billed milliseconds, every DynamoDB request unit and S3 request of the stack's
process; two things happen outside it and are added from what the client did: the POST to S3 (one
PUT-class request) and the admin API's requests (HTTP API requests, and the admin function's GB-s
billed at the wall time each request took, an upper bound). S3 → Lambda notifications are free in
AWS (locally they pass through a moto queue, whose requests are left out). Writes the "Per upload"
section of docs/cost.md. About two minutes.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from infra.constructs.functions import SPECS
from local.bench import machine_line
from local.bench.streaming import Stack
from local.cost.prices import load_prices, price
from local.cost.report import PLATFORM_LOG_BYTES_PER_INVOCATION, _usd
from shared.cli import POLL_SECONDS
from tests.support.knowledge_samples import make_pdf

ROOT = Path(__file__).resolve().parents[2]
COST_DOC = ROOT / "docs" / "cost.md"
MARKER = "per-upload"
RUNS = 3


@dataclass(frozen=True)
class Sample:
    name: str
    what: str
    data: bytes
    content_type: str


def samples() -> list[Sample]:
    handbook = "\n\n".join(
        f"## Policy {n}\n\nOrders of kind {n} ship within {n % 7 + 1} working days; returns of kind {n} are "
        f"accepted for {n % 30 + 10} days when the item is unused, with the receipt and the original box. "
        f"Refunds for kind {n} reach the card within {n % 5 + 3} days of the return's arrival."
        for n in range(300)
    )
    manual = make_pdf(
        [["# Zephyr kettle manual", "The Zephyr boils 1.7 litres in three minutes."], ["Descale it every six weeks."]],
        title="Zephyr kettle manual",
        photo_bytes=7_000_000,
    )
    return [
        Sample("manual.pdf", "a 7 MB PDF, mostly a photo (2 short pages of text)", manual, "application/pdf"),
        Sample(
            "handbook.md",
            f"a {len(handbook) // 1024} KB Markdown handbook (300 sections)",
            handbook.encode(),
            "text/markdown",
        ),
    ]


def upload(admin: httpx.Client, tenant: str, sample: Sample, stamp: str) -> tuple[int, float]:
    """One upload as `kefu ingest` makes it; (admin API requests, seconds they took)."""
    spent = 0.0
    started = time.monotonic()
    filename = f"{stamp}-{sample.name}"
    declared = {"filename": filename, "contentType": sample.content_type, "size": len(sample.data)}
    ticket = admin.post(f"/v1/tenants/{tenant}/knowledge/uploads", json=declared)
    ticket.raise_for_status()
    spent += time.monotonic() - started
    body = ticket.json()
    files = {"file": (filename, sample.data, sample.content_type)}
    httpx.post(body["url"], data=body["fields"], files=files, timeout=120).raise_for_status()
    requests = 1
    while True:
        time.sleep(POLL_SECONDS)
        started = time.monotonic()
        status = admin.get(f"/v1/tenants/{tenant}/knowledge/uploads/{body['uploadId']}").json()
        spent += time.monotonic() - started
        requests += 1
        if status["status"] == "indexed":
            return requests, spent
        if status["status"] == "failed":
            raise RuntimeError(f"{sample.name}: {status['error']}")


def measure() -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_line(), "runs": RUNS, "samples": {}}
    with tempfile.TemporaryDirectory(prefix="kefu-cost-uploads-") as state:
        # No model is asked anything here; the stack only needs an address for it.
        # As AWS runs it: INFO logs and Powertools metrics (both are CloudWatch Logs bytes).
        env = {"POWERTOOLS_LOG_LEVEL": "INFO", "POWERTOOLS_METRICS_DISABLED": "false"}
        with Stack("http://127.0.0.1:9/v1", Path(state), env=env, module="local.cost._stack") as stack:
            usage_url = f"{stack.info['admin_url']}/_emulator/usage"
            headers = {"Authorization": f"Bearer {stack.info['admin_key']}"}
            tenant = stack.info["tenant_id"]
            with httpx.Client(base_url=stack.info["admin_url"], headers=headers, timeout=120) as admin:
                for sample in samples():
                    upload(admin, tenant, sample, "warm-up")  # the ingest function's imports and model
                    httpx.delete(usage_url)
                    requests, seconds = 0, 0.0
                    for run in range(RUNS):
                        made, spent = upload(admin, tenant, sample, f"run{run}")
                        requests, seconds = requests + made, seconds + spent
                    time.sleep(1.0)
                    results["samples"][sample.name] = {
                        "what": sample.what,
                        "bytes": len(sample.data),
                        "adminRequests": requests / RUNS,
                        "adminSeconds": seconds / RUNS,
                        "usage": httpx.get(usage_url).json(),
                    }
    return results


def lines(sample: dict[str, Any], runs: int) -> list[tuple[str, float]]:
    p = load_prices()
    usage = sample["usage"]
    aws = usage.get("aws", {})
    ingest = usage["lambda"].get("kefu-ingest", {"invocations": 0, "billedMs": 0})
    ingest_gb = SPECS["ingest"].memory_mb / 1024
    admin_gb = SPECS["admin"].memory_mb / 1024
    invocations = ingest["invocations"] / runs
    ingest_seconds = ingest["billedMs"] / 1000 / runs
    lambda_request = price("lambda", "per_million_requests", p) / 1e6
    s3 = aws.get("s3", {})
    gets = sum(n for op, n in s3.items() if op in ("GetObject", "HeadObject")) / runs
    puts = 1 + sum(n for op, n in s3.items() if op in ("PutObject", "CopyObject", "ListObjectsV2")) / runs
    dynamodb = aws.get("dynamodb", {})
    wru, rru = dynamodb.get("WRU", 0) / runs, dynamodb.get("RRU", 0) / runs
    log_bytes = aws.get("logs", {}).get("bytes", 0) / runs + invocations * PLATFORM_LOG_BYTES_PER_INVOCATION
    return [
        (
            f"Lambda ingest ({SPECS['ingest'].memory_mb} MB): {invocations:.1f} invocation, "
            f"{ingest_seconds:.1f} s billed",
            ingest_seconds * ingest_gb * price("lambda", "gb_second_arm64", p) + invocations * lambda_request,
        ),
        (
            f"Admin API: {sample['adminRequests']:.1f} HTTP API requests (the upload, then a status poll every "
            f"{POLL_SECONDS:g} s), admin function at their wall time ({sample['adminSeconds']:.2f} s)",
            sample["adminRequests"] * (price("apigateway", "http_per_million_requests", p) / 1e6 + lambda_request)
            + sample["adminSeconds"] * admin_gb * price("lambda", "gb_second_arm64", p),
        ),
        (
            f"S3: {puts:.1f} PUT/LIST (the presigned POST, the new index version) and {gets:.1f} GET",
            puts * price("s3", "per_thousand_put_requests", p) / 1e3
            + gets * price("s3", "per_thousand_get_requests", p) / 1e3,
        ),
        (
            f"DynamoDB: {wru:.1f} WRU, {rru:.1f} RRU (the upload's ledger item, the tenant, the index pointer)",
            wru * price("dynamodb", "per_million_write_request_units", p) / 1e6
            + rru * price("dynamodb", "per_million_read_request_units", p) / 1e6,
        ),
        (
            f"CloudWatch Logs: {log_bytes / 1024:.1f} KB",
            log_bytes / 1024**3 * price("cloudwatch", "logs_ingested_per_gb", p),
        ),
    ]


def render(results: dict[str, Any]) -> str:
    out = [
        f"{results['machine']} By `python -m local.cost.uploads`: {results['runs']} uploads of each file "
        "after a warm-up one, through the metered local stack "
        "(local/cost/uploads.py says what is counted and what is added). Ingestion time, and so its "
        "GB-s, grows with the text to embed, not with the file's size.",
        "",
        "| File | Line | Cost per upload |",
        "|---|---|---:|",
    ]
    for sample in results["samples"].values():
        priced = lines(sample, results["runs"])
        for what, usd in priced:
            out.append(f"| {sample['what']} | {what} | {_usd(usd)} |")
        out.append(f"| {sample['what']} | **total** | **{_usd(sum(usd for _, usd in priced))}** |")
    return "\n".join(out)


_BLOCK = re.compile(rf"<!-- bench:{MARKER} -->.*?<!-- /bench:{MARKER} -->", re.S)
_HEADING = "## Against the goals"


def with_section(text: str, block: str) -> str:
    """``text`` with the per-upload block in place (replaced, or added before the goals)."""
    if _BLOCK.search(text):
        return _BLOCK.sub(lambda _: block, text)
    return text.replace(_HEADING, f"## Per upload: measured\n\n{block}\n\n{_HEADING}", 1)


def keep_section(previous: str, document: str) -> str:
    """The per-upload block of ``previous`` carried into a newly rendered ``document`` (local.cost)."""
    found = _BLOCK.search(previous)
    return with_section(document, found.group(0)) if found else document


def write(section: str, path: Path = COST_DOC) -> None:
    block = f"<!-- bench:{MARKER} -->\n{section}\n<!-- /bench:{MARKER} -->"
    path.write_text(with_section(path.read_text(encoding="utf-8"), block), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.cost.uploads", description=__doc__)
    parser.parse_args()
    write(render(measure()))


if __name__ == "__main__":
    main()
