"""``make run``: the whole engine on 127.0.0.1, with a demo tenant, until Ctrl-C.

Starts moto's server (DynamoDB, SQS and S3) unless endpoints are configured, a redis-server when one is
installed (else runs without the cache), the API Gateway WebSocket emulator running the real Lambda
handlers, and the admin API; seeds a demo tenant through the admin API and writes
``{state_dir}/local.json`` for scripts.

State survives restarts: moto's tables, queues and buckets are saved to ``{state_dir}/moto-state.pickle``
(every 2 s when they changed, and on stop) and restored on start, the knowledge index lives in moto's
S3 as in AWS (unpacked copies in ``{state_dir}/knowledge-cache``, as a function's /tmp), and the admin
key and demo tenant of ``local.json`` are reused. One run
holds ``{state_dir}/lock`` at a time; ``--fresh`` starts empty, ``--reset`` only empties.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import html
import json
import logging
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.constants import GENERATE_MAX_RECEIVES, VISIBILITY_TIMEOUT_FACTOR
from local.emulator.config import ApiConfig, EventSourceMapping
from local.emulator.emulator import Emulator
from local.emulator.usage import Usage
from local.services import MotoServer, RedisServer, free_port, use_dummy_aws_credentials
from shared.settings import Settings

DEMO_KNOWLEDGE = Path(__file__).parent / "demo" / "faq.json"
WEB = Path(__file__).resolve().parent.parent / "web"  # the shipped widget and console
DEMO_SHOP = Path(__file__).parent / "demo" / "shop.html"  # the local demo page that embeds the widget
DEMO_AGENTS = ({"name": "Alice 王丽", "capacity": 3}, {"name": "Bob 陈博", "capacity": 3})
STAGE = "local"
QUEUE_NAME = "kefu-generate.fifo"
DLQ_NAME = "kefu-generate-dlq.fifo"
MOTO_STATE = "moto-state.pickle"
# What --fresh and --reset remove (the lock file and logs stay).
STATE_FILES = (MOTO_STATE, MOTO_STATE + ".tmp", "knowledge", "knowledge-cache", "local.json", "visitor-token-secret")
# The knowledge bucket of the emulation (the CDK app names its own).
KNOWLEDGE_BUCKET = "kefu-knowledge-local"
# Presigned uploads land here; its ObjectCreated notifications go to UPLOAD_EVENTS_QUEUE, from which the
# emulator invokes the ingest function with each S3 event (moto's S3 notifies only its own queues).
UPLOADS_BUCKET = "kefu-uploads-local"
UPLOAD_EVENTS_QUEUE = "kefu-upload-events"
UPLOAD_EVENTS_DLQ = "kefu-upload-events-dlq"
INGEST_TIMEOUT_SECONDS = 900
# S3 invokes a function asynchronously: a failed invocation is retried twice, a minute or more apart.
UPLOAD_EVENT_RETRY_SECONDS = 60
UPLOAD_EVENT_DELIVERIES = 3
GENERATE_TIMEOUT_SECONDS = 120
# As infra/ declares it: 6x the generate timeout.
GENERATE_VISIBILITY_SECONDS = GENERATE_TIMEOUT_SECONDS * VISIBILITY_TIMEOUT_FACTOR

log = logging.getLogger("kefu.local")


def api_config(settings: Settings, queue_url: str, upload_events_url: str | None = None) -> ApiConfig:
    """The same routes and wiring as the CDK app (infra/), for the emulator."""
    return ApiConfig(
        stage=STAGE,
        region=settings.aws_region,
        route_selection_expression="$request.body.action",
        routes={
            "$connect": "kefu-connect",
            "$disconnect": "kefu-connect",
            "sendMessage": "kefu-message",
            "$default": "kefu-message",
        },
        functions={
            "kefu-connect": {"handler": "functions.connect.handler:handler", "timeout_seconds": 10},
            "kefu-message": {"handler": "functions.message.handler:handler", "timeout_seconds": 10},
            # The generate function invokes retrieve by the name its settings give.
            settings.retrieve_function: {"handler": "functions.retrieve.handler:handler", "timeout_seconds": 15},
            "kefu-generate": {
                "handler": "functions.generate.handler:handler",
                "timeout_seconds": GENERATE_TIMEOUT_SECONDS,
            },
            "kefu-ingest": {"handler": "functions.ingest.handler:handler", "timeout_seconds": INGEST_TIMEOUT_SECONDS},
            # WeChat waits 5 s for the answer before it retries.
            "kefu-channels": {"handler": "functions.channels.handler:handler", "timeout_seconds": 10},
        },
        # The channels API (an HTTP API in AWS) on the emulator's HTTP port: webhookUrl locally.
        http_routes={"ANY /channels/{channelId}": "kefu-channels"},
        event_source_mappings=[
            EventSourceMapping(queue_url=queue_url, function="kefu-generate", batch_size=1, max_concurrency=8),
            *(
                [EventSourceMapping(queue_url=upload_events_url, function="kefu-ingest", payload="s3", batch_size=1)]
                if upload_events_url
                else []
            ),
        ],
        sqs_endpoint=settings.sqs_endpoint,
    )


def create_queues(sqs_endpoint: str | None, region: str) -> str:
    """The generate FIFO queue with its dead-letter queue, as infra/ declares them."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=region)
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_url = sqs.create_queue(QueueName=DLQ_NAME, Attributes=fifo)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(GENERATE_MAX_RECEIVES)})
    attributes = {**fifo, "VisibilityTimeout": str(GENERATE_VISIBILITY_SECONDS), "RedrivePolicy": redrive}
    return str(sqs.create_queue(QueueName=QUEUE_NAME, Attributes=attributes)["QueueUrl"])


def create_upload_events(s3_endpoint: str | None, sqs_endpoint: str | None, region: str, bucket: str) -> str:
    """The uploads bucket, its ObjectCreated notifications (``uploads/``) to a queue, and that queue
    (with a dead-letter queue after UPLOAD_EVENT_DELIVERIES attempts, as S3's async invocations stop
    after two retries). Returns the queue's URL, for the emulator's S3 event source."""
    import boto3

    from shared.ingest.s3_uploads import create_uploads_bucket
    from shared.ingest.uploads import UPLOADS_PREFIX

    sqs = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=region)
    dlq_url = sqs.create_queue(QueueName=UPLOAD_EVENTS_DLQ)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(UPLOAD_EVENT_DELIVERIES)})
    attributes = {"VisibilityTimeout": str(UPLOAD_EVENT_RETRY_SECONDS), "RedrivePolicy": redrive}
    queue_url = str(sqs.create_queue(QueueName=UPLOAD_EVENTS_QUEUE, Attributes=attributes)["QueueUrl"])
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=region)
    create_uploads_bucket(s3, bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": "ingest-uploads",
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOADS_PREFIX}]}},
                }
            ]
        },
    )
    return queue_url


def allow_browser_uploads(s3_endpoint: str | None, region: str, bucket: str, origin: str) -> None:
    """CORS on the uploads bucket: presigned POSTs from the console's origin (and its localhost name)."""
    import boto3

    origins = sorted({origin, origin.replace("127.0.0.1", "localhost")})
    rule = {"AllowedMethods": ["POST"], "AllowedOrigins": origins, "AllowedHeaders": ["*"], "MaxAgeSeconds": 3000}
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name=region)
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [rule]})


class StateDirBusy(Exception):
    """Another run holds the state directory."""


class StateLock:
    """An exclusive ``flock`` on ``{state_dir}/lock`` for as long as a run lives.

    Taken before anything in the directory is read or changed, so a second ``make run`` on the same
    folder stops at once instead of wiping or sharing the first one's state. The kernel drops the lock
    when the process dies, however it dies, so a crashed run never leaves a stale lock behind."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "lock"
        self._file: Any = None

    def acquire(self) -> StateLock:
        file = self.path.open("a+")
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise StateDirBusy(
                f"{self.path.parent} is in use by a running kefu (pid {holder}). Stop it first (Ctrl-C), "
                "or give this run a folder of its own: --state-dir DIR (and another port: KEFU_PORT)."
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def wipe_state(state_dir: Path) -> None:
    """Forget every tenant, key, upload, agent and conversation of earlier runs (lock held)."""
    for name in STATE_FILES:
        target = state_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def previous_run(state_dir: Path) -> dict[str, Any]:
    """What the last run wrote to local.json ({} when there is none or it is unreadable)."""
    try:
        return dict(json.loads((state_dir / "local.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


@dataclass
class LocalStack:
    """What ``make run`` started, so that it stops exactly that."""

    http_port: int
    ws_port: int
    state_dir: Path
    host: str = "127.0.0.1"
    moto: MotoServer | None = None
    redis: RedisServer | None = None
    env: dict[str, str] = field(default_factory=dict)
    stopping: bool = False
    # False: no redis-server even when installed (the cost benchmark meters the default deployment,
    # which has no Redis).
    start_redis: bool = True

    def start_services(self) -> None:
        use_dummy_aws_credentials()
        configured = os.environ
        if not (
            configured.get("KEFU_DYNAMODB_ENDPOINT")
            and configured.get("KEFU_SQS_ENDPOINT")
            and (configured.get("KEFU_S3_ENDPOINT") or configured.get("KEFU_KNOWLEDGE_BACKEND", "s3") != "s3")
        ):
            state_file = self.state_dir / MOTO_STATE
            restoring = state_file.exists()
            if not restoring:
                # Without moto's state, knowledge indexed by an earlier run belongs to tenants that no
                # longer exist.
                shutil.rmtree(self.state_dir / "knowledge", ignore_errors=True)
                shutil.rmtree(self.state_dir / "knowledge-cache", ignore_errors=True)
            # Messages an earlier run had taken off the queue are offered again at once: the
            # consumer that held them is gone.
            self.moto = MotoServer(state_file=state_file).start(release_in_flight=True)
            log.info(
                "moto server (DynamoDB, SQS, S3): %s, %s", self.moto.url, "state restored" if restoring else "empty"
            )
        if configured.get("KEFU_REDIS_URL"):
            log.info("redis: %s (configured)", configured["KEFU_REDIS_URL"])
        elif self.start_redis and RedisServer.available():
            self.redis = RedisServer().start(workdir=self.state_dir)
            log.info("redis-server: %s", self.redis.url)
        else:
            log.warning("redis-server is not installed: running without the cache (DynamoDB only)")

        http = f"http://127.0.0.1:{self.http_port}"
        defaults = {
            "KEFU_DYNAMODB_ENDPOINT": self.moto.url if self.moto else "",
            "KEFU_SQS_ENDPOINT": self.moto.url if self.moto else "",
            # Tenants' secrets (channel credentials, model keys) live in moto's Secrets Manager locally.
            "KEFU_SECRETSMANAGER_ENDPOINT": self.moto.url if self.moto else "",
            "KEFU_REDIS_URL": self.redis.url if self.redis else "",
            # The knowledge index as the default deployment keeps it: on S3 (moto's), current version
            # in DynamoDB; KEFU_KNOWLEDGE_BACKEND=local keeps it in files under KEFU_KNOWLEDGE_DIR.
            "KEFU_KNOWLEDGE_BACKEND": "s3",
            "KEFU_S3_ENDPOINT": self.moto.url if self.moto else "",
            "KEFU_KNOWLEDGE_BUCKET": KNOWLEDGE_BUCKET,
            "KEFU_UPLOADS_BUCKET": UPLOADS_BUCKET,
            "KEFU_KNOWLEDGE_CACHE_DIR": str(self.state_dir / "knowledge-cache"),
            "KEFU_KNOWLEDGE_DIR": str(self.state_dir / "knowledge"),
            # The key of the last run, so scripts and bookmarks keep working across restarts.
            "KEFU_ADMIN_KEY": previous_run(self.state_dir).get("admin_key") or "ak_" + secrets.token_urlsafe(24),
            # Kept across runs, so visitors' tokens stay valid after a restart.
            "KEFU_VISITOR_TOKEN_SECRET": persistent_secret(self.state_dir / "visitor-token-secret"),
            # A local model server (Ollama, vLLM) usually listens on localhost; in AWS this stays off.
            "KEFU_MODEL_ENDPOINT_ALLOW_LOOPBACK": "true",
            # Quiet, single-process defaults for Powertools; real Lambda keeps its own.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        for name, value in defaults.items():
            if value and not configured.get(name):
                os.environ[name] = value
        # Always the emulator's own endpoints: the Lambda Invoke and @connections APIs it serves.
        os.environ["KEFU_LAMBDA_ENDPOINT"] = http
        os.environ["KEFU_CONNECTIONS_ENDPOINT"] = f"{http}/{STAGE}"
        # Where platforms reach the channels API: this run's HTTP port (a tunnel's URL, if configured).
        if not configured.get("KEFU_CHANNELS_PUBLIC_URL"):
            os.environ["KEFU_CHANNELS_PUBLIC_URL"] = http

    def stop_services(self) -> None:
        self.stopping = True
        if self.redis:
            self.redis.stop()
        if self.moto:
            self.moto.stop()  # saves its state

    async def restart_moto_when_it_dies(self) -> None:
        """moto exited while the stack runs (a crash, or ``kill``): start it again on the same port from
        its last snapshot. Handlers see DynamoDB and SQS refuse connections meanwhile, as during an
        outage. Messages in flight keep their visibility timeout: their consumer may still run."""
        moto = self.moto
        if moto is None:
            return
        while not self.stopping:
            await asyncio.sleep(0.5)
            if moto.running or self.stopping:
                continue
            log.warning("moto exited: restarting it from its last snapshot")
            moto.launch()  # on the main thread: moto dies with the thread that started it
            try:
                await asyncio.to_thread(moto.wait_ready)
            except TimeoutError:
                log.exception("moto did not come back; retrying")


def persistent_secret(path: Path) -> str:
    """A random secret made once and kept in ``path`` (readable by its owner only)."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(value)
    return value


def web_app(admin_app: Any, page_values: dict[str, str]) -> Any:
    """The admin API plus the widget, the agent console and a demo shop page that embeds the widget.

    ``/widget/`` and ``/console/`` are the same static files a deployment uploads (infra/), with
    ``/console/config.json`` (this run's WebSocket URL) as the deployment writes it; ``/demo`` fills
    the one ``<script>`` tag a site adds with this run's tenant, widget key and WebSocket URL.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def demo(request: Request) -> HTMLResponse:
        language = "zh-CN" if request.query_params.get("lang", "").startswith("zh") else "en"
        page = DEMO_SHOP.read_text(encoding="utf-8")
        values = {**page_values, "LANG": language}
        for name, value in values.items():
            page = page.replace(f"__{name}__", html.escape(value, quote=True))
        return HTMLResponse(page)

    async def console_config(request: Request) -> JSONResponse:
        config = {"wsUrl": page_values["WS_URL"], "adminUrl": page_values.get("ADMIN_URL", "")}
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/demo", demo, methods=["GET"]),
            Route("/console/config.json", console_config, methods=["GET"]),
            Mount("/widget", app=StaticFiles(directory=WEB / "widget"), name="widget"),
            Mount("/console", app=StaticFiles(directory=WEB / "console", html=True), name="console"),
            Mount("/", app=admin_app),
        ]
    )


def seed_demo_agents(admin_url: str, admin_key: str, tenant_id: str) -> list[dict[str, Any]]:
    """Two agents for the demo tenant, created through the admin API; their keys log in to the console."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=admin_url, headers=headers, timeout=30) as client:
        created = []
        for agent in DEMO_AGENTS:
            response = client.post(f"/v1/tenants/{tenant_id}/agents", json=agent)
            response.raise_for_status()
            created.append(dict(response.json()))
    return created


def restored_demo(admin_url: str, admin_key: str, previous: dict[str, Any]) -> dict[str, Any] | None:
    """The last run's demo tenant and agents, when they still exist (their state was restored)."""
    needed = ("tenant_id", "widget_key", "agents", "agent_key", "agent_id")
    if not all(previous.get(name) for name in needed):
        return None
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=admin_url, headers=headers, timeout=30) as client:
        if client.get(f"/v1/tenants/{previous['tenant_id']}/config").status_code != 200:
            return None
        listed = client.get(f"/v1/tenants/{previous['tenant_id']}/agents")
        if listed.status_code != 200:
            return None
    existing = {agent["agentId"] for agent in listed.json()["agents"]}
    if not {agent["agent_id"] for agent in previous["agents"]} <= existing:
        return None
    return {name: previous[name] for name in needed}


def ensure_demo_knowledge(admin_url: str, admin_key: str, tenant_id: str) -> bool:
    """Index the demo FAQ again when a restored demo tenant has no knowledge (state of a run before
    the knowledge moved to moto's S3, whose files are not read any more). True when it did."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=admin_url, headers=headers, timeout=120) as client:
        version = client.get(f"/v1/tenants/{tenant_id}/knowledge/version")
        version.raise_for_status()
        if version.json()["knowledgeVersion"] != "empty":
            return False
        documents = json.loads(DEMO_KNOWLEDGE.read_text(encoding="utf-8"))
        client.post(f"/v1/tenants/{tenant_id}/knowledge", json={"documents": documents}).raise_for_status()
    log.info("demo tenant %s had no knowledge: its FAQ was indexed again", tenant_id)
    return True


def seed_demo_tenant(admin_url: str, admin_key: str) -> dict[str, Any]:
    """Create the demo tenant and index its FAQ through the admin API (the path users take)."""
    documents = json.loads(DEMO_KNOWLEDGE.read_text(encoding="utf-8"))
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=admin_url, headers=headers, timeout=120) as client:
        tenant = client.post("/v1/tenants", json={"name": "Demo Shop 演示商店"})
        tenant.raise_for_status()
        created = tenant.json()
        indexed = client.post(f"/v1/tenants/{created['tenantId']}/knowledge", json={"documents": documents})
        indexed.raise_for_status()
    log.info("demo tenant %s: %s", created["tenantId"], indexed.json())
    return dict(created)


def _unchanged(config: ApiConfig) -> ApiConfig:
    return config


async def serve(
    stack: LocalStack,
    seed: bool,
    previous: dict[str, Any] | None = None,
    *,
    adjust_api: Callable[[ApiConfig], ApiConfig] = _unchanged,
    usage: Usage | None = None,
) -> None:
    """``adjust_api`` and ``usage`` are the benchmarks' (local/bench/_stack.py, local/cost/_stack.py):
    the emulator's config passed through it first, and the usage meter it counts into."""
    from shared.admin.app import create_app
    from shared.settings import get_settings
    from shared.state.tables import create_tables

    get_settings.cache_clear()
    settings = get_settings()
    create_tables(settings)
    if settings.knowledge_backend == "s3":
        from shared.knowledge.aws_storage import create_bucket

        create_bucket(settings)
    queue_url = create_queues(settings.sqs_endpoint, settings.aws_region)
    upload_events_url = create_upload_events(
        settings.s3_endpoint, settings.sqs_endpoint, settings.aws_region, settings.uploads_bucket
    )
    os.environ["KEFU_GENERATE_QUEUE_URL"] = queue_url
    get_settings.cache_clear()

    # Filled once the demo tenant exists (the demo page reads them per request).
    page_values: dict[str, str] = {"TENANT": "", "WIDGET_KEY": "", "WS_URL": ""}
    emulator = Emulator(
        adjust_api(api_config(get_settings(), queue_url, upload_events_url)),
        host=stack.host,
        ws_port=stack.ws_port,
        http_port=stack.http_port,
        extra_app=web_app(create_app(), page_values),
        usage=usage,
    )
    await emulator.start()
    # The console's knowledge page posts files to the bucket from the console's origin (CORS), as
    # infra/constructs/uploads.py allows the CloudFront origin.
    page_values["ADMIN_URL"] = emulator.http_url
    await asyncio.to_thread(
        allow_browser_uploads, settings.s3_endpoint, settings.aws_region, settings.uploads_bucket, emulator.http_url
    )
    watchdog = asyncio.create_task(stack.restart_moto_when_it_dies())
    try:
        admin_key = os.environ["KEFU_ADMIN_KEY"]
        info: dict[str, Any] = {
            "ws_url": emulator.ws_url,
            "admin_url": emulator.http_url,
            "admin_key": admin_key,
            "pid": os.getpid(),  # tells a restarted run's file from the last one's
            "queue_url": queue_url,  # the generate queue; its dead-letter queue is DLQ_NAME
        }
        if settings.sqs_endpoint:
            info["sqs_endpoint"] = settings.sqs_endpoint
        if settings.redis_url:
            info["redis_url"] = settings.redis_url
        if settings.knowledge_backend == "s3":
            info["s3_endpoint"] = settings.s3_endpoint
            info["knowledge_bucket"] = settings.knowledge_bucket
        info["uploads_bucket"] = settings.uploads_bucket
        if seed:
            demo = await asyncio.to_thread(restored_demo, emulator.http_url, admin_key, previous or {})
            if demo is None:
                demo = await asyncio.to_thread(seed_demo, emulator.http_url, admin_key)
            else:
                log.info("demo tenant %s restored", demo["tenant_id"])
                await asyncio.to_thread(ensure_demo_knowledge, emulator.http_url, admin_key, demo["tenant_id"])
            info |= demo
            query = httpx.QueryParams(ws_url=emulator.ws_url, tenant=demo["tenant_id"], key=demo["widget_key"])
            info["chat_url"] = f"{emulator.http_url}/chat?{query}"
            page_values.update(TENANT=demo["tenant_id"], WIDGET_KEY=demo["widget_key"], WS_URL=emulator.ws_url)
            info["demo_url"] = f"{emulator.http_url}/demo"
            info["console_url"] = f"{emulator.http_url}/console/"
        if stack.moto is not None:
            await asyncio.to_thread(stack.moto.snapshot)  # what was just seeded survives even a kill -9
        write_local_json(stack.state_dir, info)
        print_banner(info)
        await wait_for_stop_signal()
    finally:
        stack.stopping = True
        watchdog.cancel()
        await emulator.stop()


def seed_demo(admin_url: str, admin_key: str) -> dict[str, Any]:
    """A new demo tenant with its knowledge and two agents, in local.json's terms."""
    tenant = seed_demo_tenant(admin_url, admin_key)
    agents = seed_demo_agents(admin_url, admin_key, tenant["tenantId"])
    return {
        "tenant_id": tenant["tenantId"],
        "widget_key": tenant["widgetKey"],
        "agent_id": agents[0]["agentId"],
        "agent_key": agents[0]["agentKey"],
        "agents": [{"agent_id": a["agentId"], "name": a["name"], "agent_key": a["agentKey"]} for a in agents],
    }


def write_local_json(state_dir: Path, info: dict[str, Any]) -> None:
    target = state_dir / "local.json"
    partial = target.with_suffix(".json.tmp")
    partial.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    partial.replace(target)  # readers never see half a file


def print_banner(info: dict[str, Any]) -> None:
    lines = [
        "kefu is running locally. Ctrl-C stops everything.",
        f"  chat page  : {info.get('chat_url', '(no demo tenant)')}",
        f"  WebSocket  : {info['ws_url']}",
        f"  admin API  : {info['admin_url']}/docs   (Authorization: Bearer {info['admin_key']})",
    ]
    if "tenant_id" in info:
        lines.append(f"  demo tenant: {info['tenant_id']}   widget key: {info['widget_key']}")
        lines.append(f"  widget demo: {info['demo_url']}   (Chinese: {info['demo_url']}?lang=zh)")
        lines.append(f"  console    : {info['console_url']}")
        for agent in info["agents"]:
            lines.append(f"  agent key  : {agent['agent_key']}   ({agent['name']})")
    print("\n".join(lines), flush=True)  # noqa: T201 - the runner talks to a person


async def wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.run", description=__doc__)
    default_port = int(os.environ.get("KEFU_PORT", "8700"))
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help="HTTP port (admin API, chat page, "
        "@connections, Lambda Invoke); 0 picks a free one. Default: $KEFU_PORT or 8700",
    )
    parser.add_argument("--ws-port", type=int, default=None, help="WebSocket port; default: port + 1")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--state-dir", type=Path, default=Path(".kefu"))
    parser.add_argument("--no-seed", action="store_true", help="do not create the demo tenant")
    parser.add_argument(
        "--fresh", action="store_true", help="start empty: forget the tenants, keys and data of earlier runs"
    )
    parser.add_argument("--reset", action="store_true", help="only forget the earlier runs' state, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log

    http_port = args.port or free_port()
    ws_port = args.ws_port if args.ws_port is not None else (http_port + 1 if args.port else free_port())
    args.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = StateLock(args.state_dir).acquire()
    except StateDirBusy as exc:
        print(f"cannot start: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    try:
        if args.reset or args.fresh:
            wipe_state(args.state_dir)
            log.info("%s: earlier state removed", args.state_dir)
            if args.reset:
                return 0
        stack = LocalStack(
            http_port=http_port, ws_port=ws_port or free_port(), state_dir=args.state_dir.resolve(), host=args.host
        )
        previous = previous_run(stack.state_dir)
        try:
            stack.start_services()
            asyncio.run(serve(stack, seed=not args.no_seed, previous=previous))
        except OSError as exc:
            print(f"cannot start: {exc} (is the port taken? set KEFU_PORT)", file=sys.stderr)  # noqa: T201
            return 1
        finally:
            stack.stop_services()
        return 0
    finally:
        lock.release()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
