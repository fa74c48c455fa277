"""The generate function's handler: each invocation settles its own batch, even when invocations run at
once in one process (the local emulator runs them as threads: a batch processor shared between them
once answered another invocation's job and reported success for a job it never touched, so SQS
deleted that job unanswered)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import functions.generate.handler as generate
from shared.wire.jobs import GenerateJob
from tests.events import lambda_context, sqs_event, sqs_message


def _job(name: str) -> dict[str, Any]:
    return GenerateJob(
        tenant_id="t_1",
        conversation_id=f"c_{name}",
        message_id=f"m_{name}",
        connection_id=f"conn-{name}",
        callback_url="https://example.invalid/local",
        text=f"question {name}",
    ).model_dump()


def test_invocations_at_once_each_settle_their_own_job() -> None:
    handled: list[str] = []
    slow_started, fast_done = threading.Event(), threading.Event()

    class Answers:
        """Stands in for the Generator the composition root would build (the handler's argument)."""

        def answer(self, job: GenerateJob) -> str:
            handled.append(job.conversation_id)
            if job.conversation_id == "c_slow":
                # The slow job is still being answered while a second invocation takes and fails its own.
                slow_started.set()
                assert fast_done.wait(10)
                return "answered"
            raise RuntimeError("the state store is down")

    answers: Any = Answers()
    slow = sqs_event(sqs_message(_job("slow"), message_id="msg-slow", group_id="t_1:0"))
    failing = sqs_event(sqs_message(_job("failing"), message_id="msg-failing", group_id="t_1:1"))

    def invoke_failing() -> Any:
        assert slow_started.wait(10)
        try:
            return generate.handler(failing, lambda_context("kefu-generate"), generator=answers)
        except Exception as exc:  # every record failed: Powertools raises, Lambda retries the batch
            return exc
        finally:
            fast_done.set()

    with ThreadPoolExecutor(2) as pool:
        slow_result = pool.submit(generate.handler, slow, lambda_context("kefu-generate"), generator=answers)
        failing_result = pool.submit(invoke_failing)
        slow_response, failing_response = slow_result.result(20), failing_result.result(20)

    assert sorted(handled) == ["c_failing", "c_slow"]  # each job answered once, by its own invocation
    assert slow_response == {"batchItemFailures": []}  # the slow job succeeded: deleted
    # The failing job stays on the queue (the whole batch failed), and only it.
    assert isinstance(failing_response, Exception) and "All records failed" in str(failing_response)
