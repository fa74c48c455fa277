"""WeChat's message signatures and encryption (Official Accounts in safe mode, WeCom callbacks), and
the flat XML both platforms post.

Why not wechatpy: its last release is from 2021, it pulls six, requests, optionaldict and dateutil,
and its signature check is a plain ``!=``. The scheme itself is small: AES-256-CBC from
``cryptography`` (already a dependency of boto's stack) plus the framing below, checked against the
platforms' documented layout in tests/unit/test_channels_wechat_crypto.py. XML is read with the
standard library's expat parser after refusing any DTD, so no entity can expand.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import xml.etree.ElementTree as ElementTree
from xml.sax.saxutils import escape

from shared.channels.base import MalformedRequest, SignatureInvalid

_BLOCK = 32  # WeChat pads to 32-byte blocks (PKCS#7 with k = 32), not AES's 16
MAX_BODY_BYTES = 64 * 1024


def signature(*parts: str) -> str:
    """``sha1`` of the parts sorted and joined: the URL signature (token, timestamp, nonce) and the
    message signature (the same plus the cipher text)."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(expected: str | None, *parts: str) -> None:
    if not expected or not hmac.compare_digest(signature(*parts).encode(), expected.strip().lower().encode()):
        raise SignatureInvalid("signature does not match")


class WeChatCipher:
    """Encrypts and decrypts message bodies with an account's EncodingAESKey; ``receive_id`` is the
    appid (Official Account) or corpid (WeCom) that must close every plaintext."""

    def __init__(self, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            self._key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(self._key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        self._receive_id = receive_id.encode("utf-8")

    def _cipher(self):  # type: ignore[no-untyped-def]
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def encrypt(self, message: str, random_prefix: bytes | None = None) -> str:
        body = message.encode("utf-8")
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        plain = prefix + struct.pack(">I", len(body)) + body + self._receive_id
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError as exc:
            raise SignatureInvalid("cipher text is not base64") from exc
        if not data or len(data) % 16:
            raise SignatureInvalid("cipher text has a bad length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise SignatureInvalid("cipher text has bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise SignatureInvalid("cipher text is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        body, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if len(body) != length or not hmac.compare_digest(receive_id, self._receive_id):
            raise SignatureInvalid("message is for another account")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureInvalid("message is not UTF-8") from exc


def parse_xml(body: bytes | str) -> dict[str, str]:
    """The flat ``<xml><Field>value</Field>…</xml>`` both platforms send, as a dict of strings."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedRequest("body too large")
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise MalformedRequest("XML with a DTD is refused")
    try:
        root = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise MalformedRequest(f"body is not XML: {exc}") from exc
    return {child.tag: (child.text or "").strip() for child in root}


def build_xml(fields: dict[str, str | int]) -> str:
    """Flat XML in the platforms' style (text in CDATA, numbers bare)."""
    lines = ["<xml>"]
    for name, value in fields.items():
        if isinstance(value, int):
            lines.append(f"<{name}>{value}</{name}>")
        elif "]]>" in value:
            lines.append(f"<{name}>{escape(value)}</{name}>")
        else:
            lines.append(f"<{name}><![CDATA[{value}]]></{name}>")
    lines.append("</xml>")
    return "".join(lines)


def encrypted_envelope(cipher: WeChatCipher, token: str, message: str, timestamp: str, nonce: str) -> str:
    """A message sealed for safe mode: what WeChat posts to us, and what a passive reply looks like."""
    encrypted = cipher.encrypt(message)
    return build_xml(
        {
            "Encrypt": encrypted,
            "MsgSignature": signature(token, timestamp, nonce, encrypted),
            "TimeStamp": timestamp,
            "Nonce": nonce,
        }
    )
