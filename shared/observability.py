"""Logger, tracer and metrics, created once and imported by every function; the answer meter.

The Powertools ``Tracer`` pulls in the X-Ray SDK (~100 ms of import over boto3's own) even when
tracing is off. ``tracer`` here is a stand-in with the same decorators that creates the real Tracer
on the first traced call, and only when tracing is on (in Lambda with active tracing): handler
modules import fast, local runs and tests never load the X-Ray SDK, and in Lambda the SDK loads
during the first invocation instead of at import.
"""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "kefu"
# The CloudWatch namespace of every metric kefu emits (infra/constructs/monitoring.py alarms on some).
METRICS_NAMESPACE = "Kefu"

F = TypeVar("F", bound=Callable[..., Any])


class LazyTracer:
    """``capture_lambda_handler`` and ``capture_method`` of Powertools' Tracer, created lazily."""

    def __init__(self, service: str) -> None:
        self._service = service
        self._tracer: Tracer | None = None
        self._decided = False
        self._lock = threading.Lock()

    def real(self) -> Tracer | None:
        """The Powertools Tracer, or None when tracing is off (outside Lambda, or disabled)."""
        if not self._decided:
            with self._lock:
                if not self._decided:
                    from aws_lambda_powertools.tracing.tracer import Tracer

                    # Powertools' own rule: off outside Lambda and with POWERTOOLS_TRACE_DISABLED.
                    if not Tracer._is_tracer_disabled():
                        self._tracer = Tracer(service=self._service)
                    self._decided = True
        return self._tracer

    @overload
    def capture_lambda_handler(self, handler: F) -> F: ...

    @overload
    def capture_lambda_handler(
        self, handler: None = None, *, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Callable[[F], F]: ...

    def capture_lambda_handler(
        self, handler: F | None = None, *, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> F | Callable[[F], F]:
        def decorate(function: F) -> F:
            traced: Callable[..., Any] | None = None

            @functools.wraps(function)
            def wrapper(event: Any, context: Any, **kwargs: Any) -> Any:
                nonlocal traced
                if traced is None:
                    tracer = self.real()
                    traced = (
                        function
                        if tracer is None
                        else tracer.capture_lambda_handler(
                            function, capture_response=capture_response, capture_error=capture_error
                        )
                    )
                return traced(event, context, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorate(handler) if handler is not None else decorate

    def capture_method(self, method: F) -> F:
        traced: Callable[..., Any] | None = None

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal traced
            if traced is None:
                tracer = self.real()
                traced = method if tracer is None else tracer.capture_method(method)
            return traced(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


# Where a WebSocket event's request id is: every log line of the invocation carries it.
WEBSOCKET_REQUEST_ID = "requestContext.requestId"

logger = Logger(service=SERVICE)
tracer = LazyTracer(service=SERVICE)
metrics = Metrics(namespace=METRICS_NAMESPACE, service=SERVICE)


# --- what each answer cost ---


@dataclass(frozen=True)
class AnswerRecord:
    """One answer, for metering (tokens per tenant) and latency; ``source`` says where its text came
    from: the model, the answer cache, or an identical question answered at the same time."""

    tenant_id: str
    conversation_id: str
    message_id: str
    source: str  # "model" | "cache" | "shared"
    provider: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    # From the job's start to the first frame sent, and to the end of the answer.
    first_frame_ms: float
    duration_ms: float
    frames: int
    failed_attempts: int = 0
    fallback: bool = False
    # False when the answer had no good source (nothing cleared the threshold, or the model said the
    # passages do not answer): the "no good answer" rate per tenant.
    grounded: bool = True


class AnswerMeter(ABC):
    @abstractmethod
    def record(self, answer: AnswerRecord) -> None: ...


class PowertoolsAnswerMeter(AnswerMeter):
    """One EMF record per answer. Its only dimensions are the service and the provider (a handful of
    values): CloudWatch bills every distinct dimension set as a custom metric ($0.30 a month each), so
    a tenant dimension would cost ~$2.40 per active tenant per month and grow with the customer base.
    The tenant, conversation, message and model are EMF properties: the record is a log line, so Logs
    Insights sums tokens per tenant or conversation (docs/architecture.md) at no metric cost."""

    def __init__(self, namespace: str = "Kefu") -> None:
        self._namespace = namespace

    def record(self, answer: AnswerRecord) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        emf = EphemeralMetrics(namespace=self._namespace, service=SERVICE)
        emf.add_dimension(name="provider", value=answer.provider.split(":", 1)[0] or "unknown")
        emf.add_metric(name="AnswerFirstFrameMs", unit=MetricUnit.Milliseconds, value=answer.first_frame_ms)
        emf.add_metric(name="AnswerDurationMs", unit=MetricUnit.Milliseconds, value=answer.duration_ms)
        emf.add_metric(name="AnswerFrames", unit=MetricUnit.Count, value=answer.frames)
        if answer.input_tokens is not None:
            emf.add_metric(name="InputTokens", unit=MetricUnit.Count, value=answer.input_tokens)
        if answer.output_tokens is not None:
            emf.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=answer.output_tokens)
        if answer.source != "model":
            emf.add_metric(name="AnswersReused", unit=MetricUnit.Count, value=1)
        if answer.failed_attempts:
            emf.add_metric(name="ModelFailedAttempts", unit=MetricUnit.Count, value=answer.failed_attempts)
        if answer.fallback:
            emf.add_metric(name="ModelFallbacks", unit=MetricUnit.Count, value=1)
        if not answer.grounded:
            emf.add_metric(name="AnswersWithoutSource", unit=MetricUnit.Count, value=1)
        for key, value in (
            ("tenant", answer.tenant_id),
            ("conversationId", answer.conversation_id),
            ("messageId", answer.message_id),
            ("model", answer.model),
            ("source", answer.source),
        ):
            emf.add_metadata(key=key, value=value)
        emf.flush_metrics()


# --- channel sends that did not reach the customer ---

# The metric a failed channel send counts (infra/constructs/monitoring.py alarms on it under alarms=full).
CHANNEL_SENDS_FAILED = "ChannelSendsFailed"


def count_failed_channel_send(
    tenant_id: str,
    channel_id: str,
    kind: str,
    status: str,
    conversation_id: str | None,
    namespace: str = METRICS_NAMESPACE,
) -> None:
    """One EMF record per channel send the platform did not take (``not_delivered``: unreachable or an
    error kefu has no rule for; ``window_closed``: the customer's reply window or quota). Its only
    dimension is the service, so it is one custom metric whatever the tenants: the tenant, channel,
    kind, status and conversation are properties of the log record (Logs Insights counts per tenant)."""
    from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

    emf = EphemeralMetrics(namespace=namespace, service=SERVICE)
    emf.add_metric(name=CHANNEL_SENDS_FAILED, unit=MetricUnit.Count, value=1)
    for key, value in (
        ("tenant", tenant_id),
        ("channelId", channel_id),
        ("channelKind", kind),
        ("status", status),
        ("conversationId", conversation_id or ""),
    ):
        emf.add_metadata(key=key, value=value)
    emf.flush_metrics()


class NoAnswerMeter(AnswerMeter):
    def record(self, answer: AnswerRecord) -> None:
        return None
