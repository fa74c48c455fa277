"""Runs Lambda handlers in-process, in worker threads, the way the Python runtime calls them.

Events and results go through JSON, as they do in Lambda: the handler gets its own copy of the
event, and a result that is not JSON-serializable fails with ``Runtime.MarshalError``. A handler that
outlives its timeout cannot be killed in-process; it keeps its worker thread until it returns, but
the caller gets a timeout error on time.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import functools
import importlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.emulator.config import FunctionConfig
from local.emulator.context import ClientContext, LambdaContext, make_context
from local.emulator.usage import Usage

logger = logging.getLogger("local.emulator.lambda")

Handler = Callable[[Any, LambdaContext], Any]


class UnknownFunction(LookupError):
    """No function of that name is configured."""


@dataclass(frozen=True)
class InvocationResult:
    function_name: str
    request_id: str
    payload: Any = None
    # The Lambda error document: {errorMessage, errorType, requestId, stackTrace}.
    error: dict[str, Any] | None = None
    timed_out: bool = False
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class InvocationCrashed(BaseException):
    """Raised inside a handler's thread when fault injection crashes its invocation: the emulated
    runtime process "died" (a BaseException, so the handler's ``except Exception`` does not absorb it,
    as no code survives a killed process)."""


@dataclass
class CrashPlan:
    """Fault injection: crash invocations of ``function`` at their ``after_posts``-th @connections post
    (that post is not delivered), ``remaining`` times, at most once per connection. Lambda then reports
    ``Runtime.ExitError``; an SQS-triggered batch is left on the queue for redelivery."""

    function: str
    after_posts: int = 1
    remaining: int = 1
    crashed: list[str] = field(default_factory=list)  # request ids, in order

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "afterPosts": self.after_posts,
            "remaining": self.remaining,
            "crashed": len(self.crashed),
        }


@dataclass
class _Running:
    function: str
    request_id: str
    event_text: str
    thread_id: int | None = None
    posts: int = 0
    crash_requested: bool = False


def _raise_in_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    """Schedule ``exception`` in another thread (None cancels a pending one); it is raised at that
    thread's next Python instruction, e.g. when a blocking socket call returns."""
    target = ctypes.py_object(exception) if exception is not None else None  # None: a NULL pointer
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


def _crash_document(request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed",
        "errorType": "Runtime.ExitError",
        "requestId": request_id,
        "stackTrace": [],
    }


_handlers: dict[str, Handler] = {}
_handlers_lock = threading.Lock()


class HandlerImportError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def load_handler(path: str) -> Handler:
    """Import ``"package.module:attribute"`` once and return the callable."""
    with _handlers_lock:
        cached = _handlers.get(path)
    if cached is not None:
        return cached
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HandlerImportError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise HandlerImportError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_name}'")
    with _handlers_lock:
        _handlers[path] = handler
    return handler


def error_document(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The body Lambda returns for an unhandled exception (Python runtime format)."""
    # Skip the emulator's own frame so the trace starts in the handler, as in Lambda.
    frames = traceback.extract_tb(exc.__traceback__)[1:]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


def run_handler(handler_path: str, event: Any, context: LambdaContext) -> tuple[Any, dict[str, Any] | None]:
    """Import, call and marshal synchronously; returns (payload, error document or None)."""
    request_id = context.aws_request_id
    try:
        handler = load_handler(handler_path)
    except HandlerImportError as exc:
        return None, {
            "errorMessage": str(exc),
            "errorType": exc.error_type,
            "requestId": request_id,
            "stackTrace": [],
        }
    try:
        result = handler(json.loads(json.dumps(event)), context)
    except Exception as exc:
        logger.warning("%s %s raised %s", context.function_name, request_id, type(exc).__name__, exc_info=exc)
        return None, error_document(exc, request_id)
    try:
        return json.loads(json.dumps(result)), None
    except (TypeError, ValueError) as exc:
        return None, {
            "errorMessage": f"Unable to marshal response: {exc}",
            "errorType": "Runtime.MarshalError",
            "requestId": request_id,
            "stackTrace": [],
        }


class LambdaRuntime:
    """The configured functions, invoked concurrently on a private thread pool."""

    def __init__(
        self,
        functions: Mapping[str, FunctionConfig],
        *,
        region: str,
        account_id: str,
        max_workers: int = 64,
        usage: Usage | None = None,
    ) -> None:
        self.functions = dict(functions)
        # AWS's meters (GET /_emulator/usage): the gateway counts frames and connections here too.
        self.usage = usage or Usage()
        self.region = region
        self.account_id = account_id
        # Not the loop's default executor: long handlers (streaming answers) must not starve it.
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="lambda")
        self.crash_plan: CrashPlan | None = None
        self._running: dict[str, _Running] = {}
        self._crash_lock = threading.Lock()

    def crash_on_post(self, connection_id: str) -> bool:
        """Called for every @connections post: True when the plan crashes the invocation that is
        posting to ``connection_id`` now (the running invocation of the plan's function whose event
        names that connection), and the post must be dropped."""
        plan = self.crash_plan
        if plan is None or plan.remaining <= 0:
            return False
        with self._crash_lock:
            for running in self._running.values():
                if running.function != plan.function or running.thread_id is None or running.crash_requested:
                    continue
                if connection_id not in running.event_text:
                    continue
                running.posts += 1
                if running.posts < plan.after_posts or plan.remaining <= 0:
                    return False
                if any(connection_id in crashed for crashed in plan.crashed):
                    return False  # once per connection
                running.crash_requested = True
                plan.remaining -= 1
                plan.crashed.append(f"{running.request_id} {connection_id}")
                _raise_in_thread(running.thread_id, InvocationCrashed)
                logger.warning("fault injection: crashing %s %s", running.function, running.request_id)
                return True
        return False

    def _run_tracked(self, running: _Running, function: FunctionConfig, event: Any, context: LambdaContext) -> Any:
        running.thread_id = threading.get_ident()
        crashed = False
        result: Any = (None, None)
        try:
            result = run_handler(function.handler, event, context)
        except InvocationCrashed:
            crashed = True
        while True:  # a scheduled crash may fire during this cleanup too: finish it regardless
            try:
                with self._crash_lock:
                    self._running.pop(running.request_id, None)
                    if running.crash_requested:
                        _raise_in_thread(threading.get_ident(), None)  # cancel one not yet raised
                        crashed = True
                break
            except InvocationCrashed:
                crashed = True
        return (None, _crash_document(running.request_id)) if crashed else result

    def has(self, name: str) -> bool:
        return name in self.functions

    def config(self, name: str) -> FunctionConfig:
        try:
            return self.functions[name]
        except KeyError:
            raise UnknownFunction(name) from None

    def new_context(
        self,
        name: str,
        *,
        client_context: ClientContext | None = None,
        tenant_id: str | None = None,
    ) -> LambdaContext:
        function = self.config(name)
        return make_context(
            name,
            region=self.region,
            account_id=self.account_id,
            memory_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
            client_context=client_context,
            tenant_id=tenant_id,
        )

    async def invoke(
        self,
        name: str,
        event: Any,
        *,
        timeout_seconds: float | None = None,
        client_context: ClientContext | None = None,
        tenant_id: str | None = None,
    ) -> InvocationResult:
        """Run function ``name``; ``timeout_seconds`` (default: the function's) bounds the wait."""
        function = self.config(name)
        context = self.new_context(name, client_context=client_context, tenant_id=tenant_id)
        limit = function.timeout_seconds if timeout_seconds is None else timeout_seconds
        loop = asyncio.get_running_loop()
        running = _Running(name, context.aws_request_id, json.dumps(event))
        with self._crash_lock:
            self._running[context.aws_request_id] = running
        call = functools.partial(contextvars.copy_context().run, self._run_tracked, running, function, event, context)
        started = time.perf_counter()
        try:
            payload, error = await asyncio.wait_for(loop.run_in_executor(self._executor, call), limit)
            timed_out = False
        except TimeoutError:
            timed_out = True
            payload, error = (
                None,
                {
                    "errorMessage": f"RequestId: {context.aws_request_id} Error: Task timed out after "
                    f"{limit:.2f} seconds",
                    "errorType": "Sandbox.Timedout",
                    "requestId": context.aws_request_id,
                    "stackTrace": [],
                },
            )
        duration_ms = (time.perf_counter() - started) * 1000
        self.usage.invocation(name, duration_ms)
        outcome = "timeout" if timed_out else ("error" if error else "ok")
        logger.info("invoke %s %s %s %.1f ms", name, context.aws_request_id, outcome, duration_ms)
        return InvocationResult(
            function_name=name,
            request_id=context.aws_request_id,
            payload=payload,
            error=error,
            timed_out=timed_out,
            duration_ms=duration_ms,
        )

    def close(self) -> None:
        # Do not wait: a handler stuck past its timeout must not block shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
