"""The streaming benchmark's report (not product code): its figures as the Markdown section of
docs/performance.md, judged against the goals."""

from __future__ import annotations

import statistics

from local.bench import machine_line
from local.bench._streaming_harness import HANDLERS, Sample
from local.bench._streaming_scenarios import COLD_START_RUNS, Level
from local.stats import percentile

GOAL_P50_MS, GOAL_P99_MS, GOAL_POSTS_PER_SECOND = 30, 100, 20


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def report(
    cold: dict[str, float],
    baseline: list[Sample],
    rates: dict[int, list[Sample]],
    sweep: list[Level],
    reused: dict[str, float],
    idle_cpu_percent: float,
    sqs: dict[str, dict[str, float]],
    load: str,
) -> str:
    added = [s.added_ms for s in baseline]
    p50, p99 = percentile(added, 50), percentile(added, 99)
    to_ack = [(s.ack - s.sent) * 1000 for s in baseline]
    to_model = [(s.received - s.ack) * 1000 for s in baseline]
    model_to_client = [(s.deltas[0] - s.first_token) * 1000 for s in baseline]
    lines = [
        "## Streaming and the model gateway",
        "",
        machine_line() + f" Load average when the part started: {load}.",
        "",
        "The real emulator path (`python -m local.bench streaming`): the `make run` stack (moto, redis-server, "
        "the emulator running the real handlers) with `KEFU_LLM_PROVIDER=openai` pointing at a fixture server that "
        "streams tokens at a fixed rate; visitors on real WebSockets (naming their conversation after the first "
        "answer, as the widget does); the demo tenant's knowledge (retrieval "
        "embeds every question). *Added latency* = sendMessage → first `answer.delta` at the client, minus the "
        "fixture's own time from request to first token.",
        "",
        "### Added first-token latency (one visitor at a time)",
        "",
        "| | measured | goal |",
        "|---|---|---|",
        f"| p50 | {_ms(p50)} | ≤ {GOAL_P50_MS} ms {'✅' if p50 <= GOAL_P50_MS else '❌'} |",
        f"| p99 | {_ms(p99)} | ≤ {GOAL_P99_MS} ms {'✅' if p99 <= GOAL_P99_MS else '❌'} |",
        f"| samples | {len(added)} (5 conversations × 12 questions) | |",
        "",
        "Where it goes (medians): "
        f"sendMessage → `ack` {_ms(statistics.median(to_ack))}; "
        f"`ack` → request at the model {_ms(statistics.median(to_model))} (SQS pickup, generate: already-answered "
        "check, tenant config, history, retrieve with the query embedding, prompt); "
        f"model's first token → first `answer.delta` at the client {_ms(statistics.median(model_to_client))} "
        "(SSE parse, coalescer, @connections POST, WebSocket).",
        "",
        "### The local SQS → generate mapping",
        "",
        "A conversation's next message, sent once the previous job is done (moto, a 200 ms job; "
        "`local/bench/_sqs_probe.py`): time until the function receives it.",
        "",
        "| poller | p50 | max |",
        "|---|---|---|",
        *(f"| {name} | {_ms(v['p50'])} | {_ms(v['max'])} |" for name, v in sqs.items()),
        "",
        "moto's ReceiveMessage snapshots the FIFO message groups that are busy when the call starts. A long "
        "poll begun while the conversation's previous job ran never sees that group free up: the follow-up "
        "waited out the rest of the 1 s poll (and moto spun a CPU meanwhile). That was the emulator's "
        "doing, not SQS's: its mapping now short-polls (every 20 ms, and at once when a batch ends) while "
        "batches are in flight, and long-polls only when idle (a new message then arrives within "
        "milliseconds, as with Lambda's event source mapping in AWS).",
        "",
        "### Frames per answer and @connections posts per stream",
        "",
        "| model token rate | tokens per answer | frames per answer | posts/s per stream (mean) "
        "| busiest second | goal |",
        "|---|---|---|---|---|---|",
    ]
    for rate, samples in rates.items():
        if not samples:
            lines.append(f"| {rate} tok/s | – | – | – | – | (no samples) |")
            continue
        frames = statistics.mean(len(s.deltas) for s in samples)
        posts = statistics.mean(s.posts_per_second for s in samples)
        busiest = max(s.busiest_second for s in samples)
        tokens = int(rate * {20: 3, 100: 2, 1000: 1}[rate])
        verdict = "✅" if busiest <= GOAL_POSTS_PER_SECOND else "❌"
        lines.append(
            f"| {rate} tok/s | {tokens} | {frames:.0f} | {posts:.1f} | {busiest} posts "
            f"| ≤ {GOAL_POSTS_PER_SECOND}/s {verdict} |"
        )
    lines += [
        "",
        "Posts are counted as frames received by the client (one `answer.delta` = one @connections POST).",
        "",
        "### Concurrent conversations",
        "",
        "Each visitor asks, reads the whole answer (40 tokens at 50 tok/s), waits 50–250 ms and asks again, for 8 s.",
        "",
        "| conversations | answers | added p50 | added p99 | errors | stack CPU | CPU per answer |",
        "|---|---|---|---|---|---|---|",
    ]
    best, holding = 0, True
    for level in sweep:
        values = [s.added_ms for s in level.samples]
        level_p99 = percentile(values, 99)
        holding = holding and bool(values) and level_p99 <= GOAL_P99_MS and level.errors == 0
        if holding:
            best = level.conversations
        cpu_share = level.cpu_seconds / level.elapsed * 100
        per_answer = level.cpu_seconds / max(len(level.samples), 1) * 1000
        lines.append(
            f"| {level.conversations} | {len(values)} | {_ms(percentile(values, 50))} | {_ms(level_p99)} "
            f"| {level.errors} | {cpu_share:.0f} % | {per_answer:.0f} ms |"
        )
    lines += [
        "",
        f"**{best} concurrent conversations** stream with p99 added latency ≤ {GOAL_P99_MS} ms on this machine "
        "(the largest level measured before p99 passed it). Stack CPU is the emulator process (handlers, the "
        "admin API) with its children (moto's server, redis-server) as a share of one core; the fixture and the "
        "visitors run in other processes on the same 2 cores.",
        f"Idle, the stack uses {idle_cpu_percent:.1f} % of a core (the SQS poller long-polls moto).",
        "",
        "### Reused answers",
        "",
        f"{reused['rounds']:.0f} rounds (medians). A question asked again as the first question of another "
        "conversation (same tenant, knowledge version, model settings and cited passages) is answered from the "
        f"cache: first `answer.delta` after {_ms(reused['cached_first_delta_ms'])} from sendMessage (fresh: "
        f"{_ms(reused['fresh_first_delta_ms'])}, including the fixture's 10 ms to its first token), in "
        f"{reused['cached_frames']:.0f} frames (the first word at once, the rest one interval later; fresh: "
        f"{reused['fresh_frames']:.0f}). The model was asked {reused['model_requests_for_repeats']:.0f} times for "
        f"{2 * reused['rounds']:.0f} such questions, and {reused['model_requests_for_pairs']:.0f} times for "
        f"{reused['rounds']:.0f} pairs of visitors asking the same new question at once (the second streams "
        "the first's frames).",
        "",
        "### Cold start: handler import time in fresh processes",
        "",
        f"Median of {COLD_START_RUNS} runs each, interleaved with a bare `import boto3` in the same run.",
        "",
        "| module | import | × boto3 | goal |",
        "|---|---|---|---|",
        f"| `boto3` | {_ms(cold['boto3'])} | 1.0 | |",
        f"| `fastapi, mangum, pydantic_settings, aws_lambda_powertools` (admin's floor) | {_ms(cold['admin floor'])} "
        f"| {cold['admin floor'] / cold['boto3']:.1f} | |",
    ]
    for name in HANDLERS:
        ratio = cold[name] / cold["boto3"]
        goal = 3 if name == "generate" else 2
        lines.append(
            f"| `functions.{name}.handler` | {_ms(cold[name])} | {ratio:.1f} "
            f"| ≤ {goal}× {'✅' if ratio <= goal else '❌'} |"
        )
    lines += [
        "",
        "Paid later, only when used (measured after importing the generate handler): "
        + "; ".join(
            f"{name} {_ms(cold[name])}"
            for name in ("openai-compatible adapter", "Bedrock adapter", "SageMaker adapter")
        )
        + f". The X-Ray SDK (Powertools Tracer) loads on the first traced invocation in Lambda: {_ms(cold['tracer'])}; "
        "outside Lambda (tests, `make run`) never.",
        "",
        "### Against the goals",
        "",
        f"- **Added first-token latency p50 {_ms(p50)} (goal ≤ {GOAL_P50_MS} ms"
        f"{', met' if p50 <= GOAL_P50_MS else ', missed'}); p99 {_ms(p99)} (goal ≤ {GOAL_P99_MS} ms"
        f"{', met' if p99 <= GOAL_P99_MS else ', missed'}).** "
        f"The message function takes {_ms(statistics.median(to_ack))} to the `ack`: it reads the connection and "
        "the conversation the message names side by side (the tenant's handoff settings are kept by a warm "
        "function for `KEFU_TENANT_CONFIG_TTL_SECONDS`), and stores the message with its idempotency record in "
        "one TransactWriteItems (whose condition finds a resend, so the common path reads nothing more); the job "
        "is queued while the ack is posted. From the `ack` to the model request "
        f"({_ms(statistics.median(to_model))}): the SQS pickup and generate's work, where retrieval (a Lambda "
        "invoke and the query embedding), the answered-check, the ownership check, the history and the tenant's "
        "model all start at once. From the model's first token to the visitor: "
        f"{_ms(statistics.median(model_to_client))} (the coalescer sends the first piece at once). What is left is "
        "mostly the emulation's: the ~10 round trips on the path (DynamoDB, SQS, the retrieve invoke, "
        "@connections, Redis) each cost 2–6 ms of interpreter time in the one process that runs every handler and "
        "the emulator's servers, where in AWS they run in separate sandboxes and services (with network latency "
        "of their own instead).",
        "- **Posts per stream** stay under 20 per second at any token rate: the coalescer sends at most one "
        "frame per 60 ms (`KEFU_STREAM_FLUSH_MS`), the first at once, and frames of up to 400 characters.",
        f"- **Concurrency: {best} conversation(s)** within the p99 goal here. The emulator runs every handler "
        "and the admin API in one Python process, one interpreter lock for all of them; moto's server runs in"
        " a process of its own (it used to share that lock), served with keep-alive connections (waitress; "
        "werkzeug's development server opened a connection per call), and its TransactWriteItems backs up "
        "only the items it writes (it deep-copied whole tables, so every message got slower as the local "
        "database grew; local/services.py). In AWS each invocation has its own sandbox and DynamoDB is a "
        "service, so this limit is the emulation's, not the design's; it bounds what `make run` can "
        "demonstrate on one machine.",
        f"- **Cold start**: every handler but admin's imports in under 2× `import boto3` (generate under 3×). "
        f"admin's is {cold['admin'] / cold['boto3']:.1f}×, and ≤ 2× is out of reach with FastAPI: FastAPI, Mangum, "
        f"pydantic-settings and Powertools alone take {_ms(cold['admin floor'])} "
        f"({cold['admin floor'] / cold['boto3']:.1f}×). On top come the admin's route table (~50 ms: FastAPI builds "
        "a model field per parameter, and its first route loads `pydantic.v1` for a compatibility check) and the "
        "shared config models; parsers, indexes, embeddings and model adapters load only in the routes that use "
        "them. Deferring the app to the first request would only move the time into that request; a lighter "
        "router than FastAPI would be the way under 2×.",
    ]
    return "\n".join(lines)
