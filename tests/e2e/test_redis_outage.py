"""redis-server dies mid-conversation: nothing fails and nothing is lost (DynamoDB stays the truth)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from tests.e2e.client import LocalStackInfo, ask, open_visitor, send_message
from tests.e2e.conftest import running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackInfo]:
    """A stack of its own: this test stops its Redis."""
    with running_stack(tmp_path_factory.mktemp("kefu-redis-outage")) as info:
        yield info


def test_chat_goes_on_when_redis_is_killed(own_stack: LocalStackInfo) -> None:
    assert own_stack.redis_url, "make test installs redis-server, so the stack must run with a cache"
    cache = redis.Redis.from_url(own_stack.redis_url)
    questions = [
        "How long does shipping take?",
        "Can I return a sofa?",
        "怎么修改收货地址？",
        "Do you have gift cards?",
    ]

    async def scenario() -> list[list[dict]]:
        answers = []
        async with await open_visitor(own_stack.visitor_url()) as ws:
            for i, question in enumerate(questions):
                if i == 2:
                    assert cache.keys("kefu:conv:*"), "the first turns were cached"
                    cache.shutdown(nosave=True)  # redis-server exits now
                answers.append(await ask(ws, send_message(question)))
        return answers

    answers = asyncio.run(scenario())
    with pytest.raises(redis.ConnectionError):
        cache.ping()
    for frames in answers:
        assert frames[0]["type"] == "ack" and frames[-1]["type"] == "answer.end", frames
    conversation = answers[0][0]["conversationId"]
    assert {frames[0]["conversationId"] for frames in answers} == {conversation}
    with own_stack.admin() as admin:
        transcript = admin.get(f"/v1/tenants/{own_stack.tenant_id}/conversations/{conversation}/messages").json()
    texts = [m["text"] for m in transcript["messages"]]
    assert texts[0::2] == questions
    assert texts[1::2] == [frames[-1]["text"] for frames in answers]
