"""docs/cost.md from the synthesized templates (idle floor) and a benchmark's counts (per conversation)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.cost.idle import FIXED, USAGE_ONLY, FixedCost, fixed_costs
from local.cost.prices import load_prices, price

STATIC_DIR = Path(__file__).resolve().parents[2] / "web"  # what infra/constructs/static_site.py uploads
DAYS_PER_MONTH = 365 / 12
DAILY_VOLUMES = (1, 100, 10_000)
# Lambda's own lines per invocation (START, END, REPORT with the X-Ray segment): ~400 bytes. An
# estimate: the handlers' own output is measured.
PLATFORM_LOG_BYTES_PER_INVOCATION = 400
# Functions that start an X-Ray trace (retrieve runs inside generate's).
TRACE_ROOTS = ("connect", "message", "generate")
GOAL_IDLE_USD = 1.0
GOAL_PER_CONVERSATION_USD = 0.0003


@dataclass(frozen=True)
class Line:
    what: str
    quantity: float
    unit: str
    usd: float


def free_tier_idle(lines: list[FixedCost], prices: dict[str, Any] | None = None) -> float:
    """The idle floor if the account's always-free tier is otherwise unused (alarms, SQS requests)."""
    prices = prices or load_prices()
    free = prices["free_tier"]
    total = 0.0
    alarms = [line for line in lines if line.cfn_type == "AWS::CloudWatch::Alarm"]
    alarm_price = price("cloudwatch", "alarm_standard_month", prices)
    total += max(0.0, sum(line.monthly_usd for line in alarms) - free["cloudwatch_alarms"] * alarm_price)
    pollers = sum(line.monthly_usd for line in lines if line.cfn_type == "AWS::Lambda::EventSourceMapping")
    receives = pollers / price("sqs", "fifo_per_million_requests", prices) * 1e6
    if receives > free["sqs_requests"]:
        total += pollers * (receives - free["sqs_requests"]) / receives
    total += sum(
        line.monthly_usd
        for line in lines
        if line.cfn_type not in ("AWS::CloudWatch::Alarm", "AWS::Lambda::EventSourceMapping")
    )
    return total


def memory_by_function(template: Mapping[str, Any]) -> dict[str, int]:
    """``kefu-<env>-<name>`` -> MemorySize, by ``<name>``."""
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        name = resource["Properties"].get("FunctionName")
        if isinstance(name, str) and name.startswith("kefu-"):
            found[name.split("-", 2)[2]] = int(resource["Properties"].get("MemorySize", 128))
    return found


def per_conversation(measured: Mapping[str, Any], memory: Mapping[str, int], *, cold: bool) -> list[Line]:
    """Cost lines for one conversation from the benchmark's counts (divided by its conversations).
    ``cold``: each function the conversation uses starts cold once (its INIT is billed)."""
    p = load_prices()
    n = measured["conversations"]
    usage = measured["usage"]
    lines: list[Line] = []
    gb_second = price("lambda", "gb_second_arm64", p)
    invocations_total = 0.0
    traces = 0.0
    for local_name, counts in usage["lambda"].items():
        name = local_name.removeprefix("kefu-")
        invocations = counts["invocations"] / n
        invocations_total += invocations
        if name in TRACE_ROOTS:
            traces += invocations
        seconds = counts["billedMs"] / 1000 / n
        if cold:
            seconds += measured["coldStartMs"][name] / 1000
        gb = memory[name] / 1024
        lines.append(
            Line(
                f"Lambda {name} ({memory[name]} MB): {invocations:.1f} invocations, {seconds * 1000:,.0f} ms billed"
                + (" incl. one cold start" if cold else ""),
                seconds * gb,
                "GB-s",
                seconds * gb * gb_second + invocations * price("lambda", "per_million_requests", p) / 1e6,
            )
        )
    ws = usage["websocket"]
    messages = (ws["messagesIn"] + ws["messagesOut"]) / n
    lines.append(
        Line(
            f"WebSocket messages ({ws['messagesIn'] / n:.1f} in, {ws['messagesOut'] / n:.1f} out)",
            messages,
            "messages",
            messages * price("apigateway", "websocket_per_million_messages", p) / 1e6,
        )
    )
    minutes = ws["connectionMinutes"] / n
    lines.append(
        Line(
            f"WebSocket connection minutes ({ws['connectionMs'] / n / 1000:.1f} s connected, per started minute)",
            minutes,
            "minutes",
            minutes * price("apigateway", "websocket_per_million_connection_minutes", p) / 1e6,
        )
    )
    aws = usage.get("aws", {})
    dynamodb = aws.get("dynamodb", {})
    wru, rru = dynamodb.get("WRU", 0) / n, dynamodb.get("RRU", 0) / n
    lines.append(
        Line(
            "DynamoDB write request units",
            wru,
            "WRU",
            wru * price("dynamodb", "per_million_write_request_units", p) / 1e6,
        )
    )
    lines.append(
        Line(
            "DynamoDB read request units",
            rru,
            "RRU",
            rru * price("dynamodb", "per_million_read_request_units", p) / 1e6,
        )
    )
    sqs = aws.get("sqs", {})
    sqs_requests = sum(count for op, count in sqs.items() if op != "ReceiveMessage (empty)") / n
    lines.append(
        Line(
            "SQS FIFO requests (send, receives that returned the job, delete)",
            sqs_requests,
            "requests",
            sqs_requests * price("sqs", "fifo_per_million_requests", p) / 1e6,
        )
    )
    s3 = aws.get("s3", {})
    gets = sum(count for op, count in s3.items() if op in ("GetObject", "HeadObject")) / n
    puts = sum(count for op, count in s3.items() if op in ("PutObject", "CopyObject", "ListObjectsV2")) / n
    lines.append(
        Line(
            "S3 GET/HEAD and PUT/LIST requests",
            gets + puts,
            "requests",
            gets * price("s3", "per_thousand_get_requests", p) / 1e3
            + puts * price("s3", "per_thousand_put_requests", p) / 1e3,
        )
    )
    secrets = aws.get("secretsmanager", {}).get("GetSecretValue", 0) / n
    lines.append(
        Line(
            "Secrets Manager reads",
            secrets,
            "calls",
            secrets * price("secretsmanager", "per_ten_thousand_api_calls", p) / 1e4,
        )
    )
    log_bytes = aws.get("logs", {}).get("bytes", 0) / n + invocations_total * PLATFORM_LOG_BYTES_PER_INVOCATION
    lines.append(
        Line(
            "CloudWatch Logs ingested (handlers' output measured + Lambda's ~400 B per invocation)",
            log_bytes / 1024,
            "KB",
            log_bytes / 1024**3 * price("cloudwatch", "logs_ingested_per_gb", p),
        )
    )
    lines.append(
        Line(
            "X-Ray traces (connect, message, generate; every one sampled)",
            traces,
            "traces",
            traces * price("xray", "per_million_traces_recorded", p) / 1e6,
        )
    )
    return lines


def first_deploy_table(profiles: Mapping[str, Mapping[str, Any]], descriptions: Mapping[str, str]) -> str:
    """docs/deploy.md's "What a first deploy costs": each profile's idle floor per day and month."""
    rows = [
        "| Profile | Idle per day | Idle per month | Mostly |",
        "|---|---:|---:|---|",
    ]
    for name, template in profiles.items():
        lines = fixed_costs(template)
        total = sum(line.monthly_usd for line in lines)
        by_type: dict[str, float] = defaultdict(float)
        for line in lines:
            by_type[line.cfn_type.split("::", 1)[1]] += line.monthly_usd
        top = sorted(by_type.items(), key=lambda kv: -kv[1])[:3]
        mostly = ", ".join(f"{kind} {_usd(amount)}" for kind, amount in top)
        rows.append(f"| {name}: {descriptions[name]} | {_usd(total / DAYS_PER_MONTH)} | {_usd(total)} | {mostly} |")
    return "\n".join(rows)


def _variant_lines(measured: Mapping[str, Any], memory: Mapping[str, int], warm_total: float) -> list[str]:
    """The same benchmark with other settings (local/cost/__main__.py VARIANTS)."""
    out = []
    for name, variant in measured.get("variants", {}).items():
        lines = per_conversation(variant, memory, cold=False)
        total = sum(line.usd for line in lines)
        ws = variant["usage"]["websocket"]
        generate = variant["usage"]["lambda"].get("kefu-generate", {})
        out += [
            f"Measured the same way with `{name}` ({', '.join(f'{k}={v}' for k, v in variant['settings'].items())}): "
            f"{ws['messagesOut'] / variant['conversations']:.1f} WebSocket messages out per conversation, generate "
            f"{generate.get('billedMs', 0) / variant['conversations']:,.0f} ms billed, "
            f"total warm **{_usd(total)}** per conversation ({(total - warm_total) / warm_total:+.0%}).",
            "",
        ]
    return out


def _receives(p: dict[str, Any]) -> float:
    """Empty receives a month of one event source mapping's idle pollers, as local/cost/idle.py prices them."""
    sqs = p["sqs"]
    return float(sqs["idle_pollers_per_mapping"] * p["hours_per_month"] * 3600 / sqs["idle_long_poll_seconds"])


def _usd(value: float) -> str:
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.7f}".rstrip("0")
    return f"${value:,.2f}"


def render(
    profiles: Mapping[str, Mapping[str, Any]],
    descriptions: Mapping[str, str],
    measured: Mapping[str, Any] | None,
    default_profile: str,
) -> str:
    p = load_prices()
    out: list[str] = [
        "# Cost",
        "",
        "Computed, not guessed: `make cost` (`python -m local.cost`) synthesizes each deployment profile "
        "(`infra/app.py`, the same app `cdk synth` runs) and prices every resource of the template from the "
        f"price table in the repo ([local/cost/prices.toml](../local/cost/prices.toml): AWS on-demand list prices, "
        f"{p['region']}, checked {p['as_of']}, each with its source); the per-conversation part runs conversations "
        "through the local stack with AWS's meters counted by the emulator and instrumented clients "
        "(local/cost/measure.py, local/emulator/usage.py, local/cost/meter.py). List prices, no free tier unless "
        "a column says so; the model (LLM tokens) is not included.",
        "",
    ]
    if measured:
        out += [measured["machine"], ""]
    static_bytes = sum(f.stat().st_size for f in STATIC_DIR.rglob("*") if f.is_file())
    out += ["## Idle floor: what a deployment bills with no traffic", ""]
    out += [
        "| Profile | Fixed monthly (list price) | With the always-free tier unused elsewhere | Of which |",
        "|---|---:|---:|---|",
    ]
    for name, template in profiles.items():
        lines = fixed_costs(template, p)
        total = sum(line.monthly_usd for line in lines)
        by_type: dict[str, list[FixedCost]] = defaultdict(list)
        for line in lines:
            by_type[line.cfn_type].append(line)
        parts = ", ".join(
            f"{len(group)} × {cfn_type.split('::', 1)[1]} {_usd(sum(g.monthly_usd for g in group))}"
            for cfn_type, group in sorted(by_type.items(), key=lambda kv: -sum(g.monthly_usd for g in kv[1]))
        )
        label = f"**{name}**" if name == default_profile else name
        out.append(f"| {label}: {descriptions[name]} | {_usd(total)} | {_usd(free_tier_idle(lines, p))} | {parts} |")
    out += [
        "",
        "How each fixed line is priced (local/cost/idle.py): an OpenSearch Serverless collection bills its minimum "
        "OCUs every hour (1 OCU without standby replicas, 2 with) × $"
        f"{price('opensearch_serverless', 'ocu_hour', p)}/OCU-hour × {p['hours_per_month']} h; a secret "
        f"${price('secretsmanager', 'secret_month', p):.2f}/month; an alarm "
        f"${price('cloudwatch', 'alarm_standard_month', p):.2f} "
        "per metric per month; a NAT gateway by the hour plus its public IPv4 address; the SQS event source "
        "mapping's pollers: Lambda long-polls the queue all the time and those empty receives are billed as SQS "
        "requests. AWS's Lambda guide (\"Configuring scaling behavior for SQS event source mappings\") says Lambda "
        "long-polls a standard queue until it becomes active, starts with five concurrent batches, and at low "
        "traffic can go down to as few as 2 (not with maximum concurrency set); it gives no idle count for FIFO "
        "queues like generate's, and SQS's longest wait is 20 s. So the floor is priced at "
        f"{p['sqs']['idle_pollers_per_mapping']} pollers × one "
f"{p['sqs']['idle_long_poll_seconds']} s poll each, the documented upper end (2 pollers would be 40% of it), "
        f"{_receives(p) / 1e3:,.0f}k receives a month at the FIFO price: an estimate, and within SQS's always-free "
        f"{p['free_tier']['sqs_requests'] / 1e6:g} million requests a month (so $0 on an account with no other SQS "
        "traffic). Everything else in the templates bills "
        f"only per use (requests, GB-s, bytes stored: the widget's and console's files in S3 are "
        f"{static_bytes / 1024:,.0f} KB, {_usd(static_bytes / 1024**3 * price('s3', 'storage_gb_month', p))} a month). "
        "A resource type the calculator has not classified makes it fail.",
        "",
    ]
    seen_types = sorted({r["Type"] for t in profiles.values() for r in t["Resources"].values()})
    fixed_types = [t for t in seen_types if t in FIXED]
    usage_types = [t for t in seen_types if t not in FIXED]
    out += [
        f"Resource types in these templates: fixed monthly: {', '.join(f'`{t}`' for t in fixed_types)}; usage only: "
        + ", ".join(f"`{t}` ({USAGE_ONLY[t]})" for t in usage_types)
        + ".",
        "",
    ]
    if measured:
        out += _per_conversation_section(profiles, measured, default_profile)
    return "\n".join(out).rstrip() + "\n"


def _per_conversation_section(
    profiles: Mapping[str, Mapping[str, Any]], measured: Mapping[str, Any], default_profile: str
) -> list[str]:
    memory = memory_by_function(profiles[default_profile])
    warm = per_conversation(measured, memory, cold=False)
    cold = per_conversation(measured, memory, cold=True)
    warm_total = sum(line.usd for line in warm)
    cold_total = sum(line.usd for line in cold)
    n = measured["conversations"]
    out = [
        "## Per conversation: measured",
        "",
        f"{n} conversations one after another through the local stack (local/cost/_stack.py: the real handlers, "
        "moto's DynamoDB and SQS, no Redis as in the default profile, the visitor limits on), each a visitor who "
        f"connects, asks {measured['questionsPerConversation']} questions (each after the previous answer ended) "
        f"and leaves; the model streams {measured['answerTokens']} tokens at {measured['tokensPerSecond']} tokens/s "
        f"(generate is billed while it waits). {measured['answered']} of "
        f"{n * measured['questionsPerConversation']} answers completed ({measured.get('modelRequests', '?')} reached "
        f"the model); {measured['seconds']} s. Lambda durations "
        "are this machine's (the handlers run in-process in the emulator, x86, shared with other work), billed at "
        "each function's configured memory (from the template). Counts per conversation:",
        "",
        "| What | Quantity | Cost (warm) |",
        "|---|---:|---:|",
    ]
    for line in warm:
        out.append(f"| {line.what} | {line.quantity:,.2f} {line.unit} | {_usd(line.usd)} |")
    out += [
        f"| **Total, warm functions** | | **{_usd(warm_total)}** |",
        f"| **Total, every function used starting cold** (INIT billed: import time measured in a fresh process, "
        f"{', '.join(f'{k} {v:.0f} ms' for k, v in measured['coldStartMs'].items() if k != 'admin')}) | | "
        f"**{_usd(cold_total)}** |",
        "",
        *_variant_lines(measured, memory, warm_total),
        "The benchmark's visitors ask at once and leave; a real one reads and types between questions. Each "
        "further minute connected adds "
        f"{_usd(load_prices()['apigateway']['websocket_per_million_connection_minutes'] / 1e6)} (a visitor who "
        f"stays 10 minutes: +{_usd(9 * load_prices()['apigateway']['websocket_per_million_connection_minutes'] / 1e6)}"
        "); the widget's idle connection is closed by API Gateway after 10 minutes.",
        "",
        "Not counted: the model's tokens; CloudFront serving the widget script (per page view, not per conversation); "
        "custom CloudWatch metrics (billed per metric per month once published, not per conversation); "
        "DynamoDB storage (the conversation's items, kept by TTL); reading the deployment's keys once per cold start "
        "(admin: the admin key from Secrets Manager, $0.000005 a read; connect and message: the visitor-token key "
        "from Parameter Store, free at standard throughput, plus a KMS decrypt with aws/ssm, $0.000003 past the free "
        "20,000 a month; locally both come from the environment). "
        "The SQS receives the emulator's poller made while "
        "jobs were in flight and found nothing are left out (Lambda's pollers do not short-poll like that; their "
        "empty receives are in the idle floor). DynamoDB units are computed from the items' sizes by AWS's rules "
        "(local/cost/units.py), not moto's placeholders; transaction items other than puts are counted at the "
        "1 KB minimum.",
        "",
        "## A month at 1, 100 and 10,000 conversations a day",
        "",
        "Idle floor + conversations × cost per conversation. At 1 and 100 a day the functions are mostly cold "
        "(Lambda reclaims an idle instance within minutes), so the cold figure is used; at 10,000 a day the warm one.",
        "",
        "| Profile | 1 / day | 100 / day | 10,000 / day |",
        "|---|---:|---:|---:|",
    ]
    for name, template in profiles.items():
        idle = sum(line.monthly_usd for line in fixed_costs(template))
        cells = []
        for volume in DAILY_VOLUMES:
            unit = cold_total if volume < 1000 else warm_total
            monthly = idle + volume * DAYS_PER_MONTH * unit
            cells.append(f"{_usd(monthly)} ({_usd(monthly / (volume * DAYS_PER_MONTH))}/conv.)")
        out.append(f"| {name} | {' | '.join(cells)} |")
    default_idle = sum(line.monthly_usd for line in fixed_costs(profiles[default_profile]))
    default_free = free_tier_idle(fixed_costs(profiles[default_profile]))
    out += [
        "",
        "## Against the goals",
        "",
        f"- Idle ≤ ${GOAL_IDLE_USD:.2f}/month for the default profile: **{_usd(default_idle)}** at list price, "
        f"{_usd(default_free)} with the always-free tier: "
        + ("met." if default_idle <= GOAL_IDLE_USD else "**not met**.")
        + " What is left (see the table): one secret, the admin key ($0.40, no free tier; the visitor-token key is "
        "an SSM SecureString, free), the essential alarms (`-c alarms=essential`, dev's default; the first 10 alarm "
        "metrics of an account are free) and the queue's idle pollers (within SQS's free million requests).",
        f"- Infra ≤ ${GOAL_PER_CONVERSATION_USD} per conversation, model excluded: **{_usd(warm_total)}** warm, "
        f"{_usd(cold_total)} with cold starts: "
        + ("met (warm)." if warm_total <= GOAL_PER_CONVERSATION_USD else "**not met** (warm).")
        + " The biggest lines are the answer's stream (one WebSocket message per @connections post) and "
        "generate's GB-s while the model streams."
        + "".join(
            f" With `{name}`: {_usd(sum(line.usd for line in per_conversation(variant, memory, cold=False)))} warm."
            for name, variant in measured.get("variants", {}).items()
        ),
    ]
    return out
