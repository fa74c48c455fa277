"""WeChat's signatures and message encryption, checked against the layout the platforms document
(decoded here independently of shared/channels/wechat_crypto.py)."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from shared.channels.base import MalformedRequest, SignatureInvalid
from shared.channels.wechat_crypto import (
    WeChatCipher,
    build_xml,
    check_signature,
    encrypted_envelope,
    parse_xml,
    signature,
)

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat issues them
APP_ID = "wx1234567890abcdef"


def test_signature_is_sha1_of_the_sorted_parts() -> None:
    expected = hashlib.sha1("".join(sorted(["tok", "1700000000", "nonce1"])).encode()).hexdigest()
    assert signature("tok", "1700000000", "nonce1") == expected
    check_signature(expected, "nonce1", "tok", "1700000000")  # order of the parts does not matter
    check_signature(expected.upper(), "tok", "1700000000", "nonce1")


@pytest.mark.parametrize("given", [None, "", "0" * 40, "not hex"])
def test_a_wrong_or_missing_signature_is_refused(given: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        check_signature(given, "tok", "1700000000", "nonce1")


def test_cipher_text_follows_the_documented_layout() -> None:
    cipher = WeChatCipher(AES_KEY, APP_ID)
    message = "<xml><Content><![CDATA[你好，退款多久到账？]]></Content></xml>"
    encrypted = cipher.encrypt(message, random_prefix=b"R" * 16)

    key = base64.b64decode(AES_KEY + "=")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(encrypted)) + decryptor.finalize()
    assert len(plain) % 32 == 0  # PKCS#7 to 32-byte blocks
    pad = plain[-1]
    assert 1 <= pad <= 32 and plain[-pad:] == bytes([pad]) * pad
    plain = plain[:-pad]
    assert plain[:16] == b"R" * 16
    (length,) = struct.unpack(">I", plain[16:20])
    assert plain[20 : 20 + length].decode() == message
    assert plain[20 + length :] == APP_ID.encode()

    assert cipher.decrypt(encrypted) == message


def test_random_prefix_makes_each_cipher_text_different() -> None:
    cipher = WeChatCipher(AES_KEY, APP_ID)
    assert cipher.encrypt("hi") != cipher.encrypt("hi")


def test_a_message_for_another_account_is_refused() -> None:
    encrypted = WeChatCipher(AES_KEY, "wxOTHER").encrypt("hello")
    with pytest.raises(SignatureInvalid, match="another account"):
        WeChatCipher(AES_KEY, APP_ID).decrypt(encrypted)


@pytest.mark.parametrize("bad", ["", "***", base64.b64encode(b"x" * 15).decode(), base64.b64encode(b"x" * 32).decode()])
def test_garbage_cipher_text_is_refused_not_crashed(bad: str) -> None:
    with pytest.raises(SignatureInvalid):
        WeChatCipher(AES_KEY, APP_ID).decrypt(bad)


def test_a_tampered_cipher_text_is_refused() -> None:
    cipher = WeChatCipher(AES_KEY, APP_ID)
    raw = bytearray(base64.b64decode(cipher.encrypt("hello world")))
    raw[20] ^= 0xFF  # flips bytes of the length field after CBC decryption
    with pytest.raises(SignatureInvalid):
        cipher.decrypt(base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize("key", ["short", AES_KEY + "A", "!" * 43])
def test_bad_encoding_aes_keys_are_refused_when_configured(key: str) -> None:
    with pytest.raises(ValueError):
        WeChatCipher(key, APP_ID)


def test_xml_round_trip_with_cdata_and_numbers() -> None:
    xml = build_xml({"ToUserName": "gh_1", "CreateTime": 1700000000, "Content": "a < b & ]]> c"})
    assert parse_xml(xml) == {"ToUserName": "gh_1", "CreateTime": "1700000000", "Content": "a < b & ]]> c"}


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Content>&a;</Content></xml>',
        b"<xml>" + b"x" * 70_000 + b"</xml>",
    ],
)
def test_unreadable_dtd_or_huge_xml_is_refused(body: bytes) -> None:
    with pytest.raises(MalformedRequest):
        parse_xml(body)


def test_envelope_is_signed_over_the_cipher_text() -> None:
    cipher = WeChatCipher(AES_KEY, APP_ID)
    fields = parse_xml(encrypted_envelope(cipher, "tok", "<xml><A>1</A></xml>", "1700000000", "n1"))
    check_signature(fields["MsgSignature"], "tok", "1700000000", "n1", fields["Encrypt"])
    assert parse_xml(cipher.decrypt(fields["Encrypt"])) == {"A": "1"}
