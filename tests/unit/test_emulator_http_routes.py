"""The emulator's HTTP API routes (payload format 2.0), as the channels function gets them locally."""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import ValidationError

from local.emulator.config import ApiConfig
from local.emulator.events import http_api_event
from local.emulator.management import http_api_response
from shared.channels.events import ChannelRequestEvent

FUNCTIONS = {"kefu-channels": "functions.channels.handler:handler"}


def test_route_keys_and_functions_are_checked() -> None:
    ApiConfig(functions=FUNCTIONS, http_routes={"ANY /channels/{channelId}": "kefu-channels"})
    with pytest.raises(ValidationError, match="expected"):
        ApiConfig(functions=FUNCTIONS, http_routes={"FETCH /channels": "kefu-channels"})
    with pytest.raises(ValidationError, match="unknown function"):
        ApiConfig(functions=FUNCTIONS, http_routes={"POST /x": "kefu-missing"})


def test_an_event_is_what_the_channels_function_parses() -> None:
    event = http_api_event(
        method="post",
        route_key="ANY /channels/{channelId}",
        raw_path="/channels/ch_1",
        path_parameters={"channelId": "ch_1"},
        query=[("nonce", "1"), ("tag", "a"), ("tag", "b")],
        headers=[("Content-Type", "text/xml"), ("X-Kefu-Signature", "v1=abc")],
        body="<xml>你好</xml>".encode(),
    )
    assert event["queryStringParameters"] == {"nonce": "1", "tag": "a,b"}  # repeated values joined, as AWS does
    parsed = ChannelRequestEvent.model_validate(event)
    request = parsed.inbound()
    assert parsed.channel_id == "ch_1" and request.method == "POST"
    assert request.headers == {"content-type": "text/xml", "x-kefu-signature": "v1=abc"}
    assert request.body == "<xml>你好</xml>".encode()
    binary = http_api_event(
        method="POST", route_key="ANY /x", raw_path="/x", path_parameters={}, query=[], headers=[], body=b"\xff\x00"
    )
    assert binary["isBase64Encoded"] and ChannelRequestEvent.model_validate(binary).inbound().body == b"\xff\x00"


def test_a_result_becomes_the_http_response_api_gateway_would_send() -> None:
    failed = http_api_response(None)
    assert failed.status_code == 500 and json.loads(failed.body) == {"message": "Internal Server Error"}
    plain = http_api_response({"statusCode": 401, "headers": {"content-type": "text/plain"}, "body": "no"})
    assert (plain.status_code, plain.body, plain.headers["content-type"]) == (401, b"no", "text/plain")
    body = base64.b64encode(b"\x01").decode()
    encoded = http_api_response({"statusCode": 200, "body": body, "isBase64Encoded": True})
    assert encoded.body == b"\x01"
    bare = http_api_response({"accepted": True})
    assert bare.status_code == 200 and json.loads(bare.body) == {"accepted": True}
