"""The cost benchmark's meters on the real local stack (make cost's short version): one conversation
through the emulator, counted the way docs/cost.md counts it (local/cost/measure.py)."""

from __future__ import annotations

from local.cost.measure import measure
from local.cost.report import per_conversation


def test_one_conversation_is_metered_function_by_function() -> None:
    questions = 2
    result = measure(conversations=1, questions=questions, cold=False)
    assert result["answered"] == questions
    assert result["modelRequests"] == questions
    usage = result["usage"]
    invocations = {name: counts["invocations"] for name, counts in usage["lambda"].items()}
    # $connect and $disconnect; one message, one generate job and one retrieve per question.
    assert invocations == {
        "kefu-connect": 2,
        "kefu-message": questions,
        "kefu-generate": questions,
        "kefu-retrieve": questions,
    }
    websocket = usage["websocket"]
    assert websocket["messagesIn"] == questions
    assert websocket["messagesOut"] > 2 * questions  # ack + deltas + answer.end per answer
    assert websocket["connections"] == 1 and websocket["connectionMinutes"] == 1
    aws = usage["aws"]
    assert aws["dynamodb"]["WRU"] > 0 and aws["dynamodb"]["RRU"] > 0
    assert aws["sqs"]["SendMessage"] == questions
    assert aws["sqs"]["ReceiveMessage"] == questions  # the receives that returned a job
    assert aws["sqs"]["DeleteMessageBatch"] == questions
    assert aws["logs"]["bytes"] > 0
    memory = {"connect": 256, "message": 512, "retrieve": 2048, "generate": 1024, "admin": 2048}
    assert sum(line.usd for line in per_conversation(result, memory, cold=False)) > 0
