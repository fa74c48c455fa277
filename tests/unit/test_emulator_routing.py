from __future__ import annotations

import json

import pytest

from local.emulator.routing import Router, RouteSelectionExpression


@pytest.mark.parametrize(
    ("expression", "body", "selected"),
    [
        ("$request.body.action", '{"action": "sendMessage"}', "sendMessage"),
        ("$request.body.action", '{"text": "no action"}', ""),
        ("$request.body.message.type", '{"message": {"type": "chat"}}', "chat"),
        ("$request.body.items[1].kind", '{"items": [{"kind": "a"}, {"kind": "b"}]}', "b"),
        ("$request.body.items[5].kind", '{"items": []}', ""),
        ("$request.body.version", '{"version": 2}', "2"),
        ("$request.body.flag", '{"flag": true}', "true"),
        ("$request.body.action", "[1, 2]", ""),
        ("${request.body.service}/${request.body.action}", '{"service": "chat", "action": "join"}', "chat/join"),
        ("v1-${request.body.action}", '{"action": "ping"}', "v1-ping"),
        ("${request.body.a}${request.body.b}", '{"a": "x"}', "x"),
    ],
)
def test_expressions_select_the_stringified_value(expression: str, body: str, selected: str) -> None:
    assert RouteSelectionExpression(expression).evaluate(body) == selected


def test_non_json_bodies_select_nothing() -> None:
    assert RouteSelectionExpression("$request.body.action").evaluate("hello") is None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("", "empty"),
        ("$request.header.action", "only $request.body"),
        ("$request.body.", "empty JSON path"),
        ("$request.body.a..b", "invalid path segment"),
        ("${request.querystring.a}", "is not ${request.body"),
        ("static text", "expected $request.body"),
    ],
)
def test_invalid_expressions_say_why(expression: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("$", r"\$").replace("{", r"\{")):
        RouteSelectionExpression(expression)


def test_router_falls_back_to_default() -> None:
    router = Router("$request.body.action", ["$connect", "$default", "sendMessage"])
    assert router.select(json.dumps({"action": "sendMessage"})) == "sendMessage"
    assert router.select(json.dumps({"action": "nosuchroute"})) == "$default"
    assert router.select("not json") == "$default"


def test_router_never_selects_reserved_routes_from_a_body() -> None:
    router = Router("$request.body.action", ["$connect", "$disconnect", "chat"])
    assert router.select(json.dumps({"action": "$connect"})) is None
    assert router.select(json.dumps({"action": "$disconnect"})) is None


def test_router_without_default_selects_nothing_for_unmatched() -> None:
    router = Router("$request.body.action", ["chat"])
    assert router.select(json.dumps({"action": "chat"})) == "chat"
    assert router.select(json.dumps({"action": "other"})) is None
    assert router.select("not json") is None
