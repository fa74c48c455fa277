"""Route selection expressions of API Gateway WebSocket APIs.

Supported forms (the ones AWS documents):

- ``$request.body.<path>``: the value at a JSON path of the message body, e.g. ``$request.body.action``;
- a template mixing static text and ``${request.body.<path>}`` variables, e.g.
  ``${request.body.service}/${request.body.action}``.

A path is dot-separated keys, each optionally followed by ``[index]`` for arrays. A missing value
resolves to ``""``; a body that is not JSON selects ``$default``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

CONNECT = "$connect"
DISCONNECT = "$disconnect"
DEFAULT = "$default"
RESERVED_ROUTES = frozenset({CONNECT, DISCONNECT, DEFAULT})

_BODY_PREFIX = "request.body."
_SEGMENT = re.compile(r"^(?P<key>[^.\[\]]+)(?P<indexes>(?:\[\d+\])*)$")
_TEMPLATE_VARIABLE = re.compile(r"\$\{([^}]*)\}")

# One step of a JSON path: a key of an object or an index of an array.
PathStep = str | int


@dataclass(frozen=True)
class _Variable:
    path: tuple[PathStep, ...]


def _parse_path(path: str, expression: str) -> tuple[PathStep, ...]:
    if not path:
        raise ValueError(f"route selection expression {expression!r}: empty JSON path after request.body")
    steps: list[PathStep] = []
    for segment in path.split("."):
        match = _SEGMENT.match(segment)
        if match is None:
            raise ValueError(
                f"route selection expression {expression!r}: invalid path segment {segment!r} "
                "(expected a key optionally followed by [index])"
            )
        steps.append(match.group("key"))
        steps.extend(int(index) for index in re.findall(r"\[(\d+)\]", match.group("indexes")))
    return tuple(steps)


def _stringify(value: Any) -> str:
    # [I] AWS stringifies the selected value; scalars as their JSON text, strings verbatim.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


class RouteSelectionExpression:
    """A parsed ``routeSelectionExpression``; raises ValueError with the reason if it is invalid."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._parts: list[str | _Variable] = self._parse(expression)

    @staticmethod
    def _parse(expression: str) -> list[str | _Variable]:
        text = expression.strip()
        if not text:
            raise ValueError("route selection expression is empty")
        if text.startswith("$request.") and "${" not in text:
            if not text.startswith("$" + _BODY_PREFIX):
                raise ValueError(f"route selection expression {expression!r}: only $request.body.<path> is supported")
            return [_Variable(_parse_path(text[len(_BODY_PREFIX) + 1 :], expression))]
        parts: list[str | _Variable] = []
        position = 0
        for match in _TEMPLATE_VARIABLE.finditer(text):
            if match.start() > position:
                parts.append(text[position : match.start()])
            variable = match.group(1)
            if not variable.startswith(_BODY_PREFIX):
                raise ValueError(
                    f"route selection expression {expression!r}: variable ${{{variable}}} is not "
                    "${request.body.<path>}"
                )
            parts.append(_Variable(_parse_path(variable[len(_BODY_PREFIX) :], expression)))
            position = match.end()
        if position < len(text):
            parts.append(text[position:])
        if not any(isinstance(part, _Variable) for part in parts):
            raise ValueError(
                f"route selection expression {expression!r}: expected $request.body.<path> or a template "
                "with ${request.body.<path>} variables"
            )
        return parts

    def evaluate(self, body: str) -> str | None:
        """The selected route key text, or None when the body is not JSON."""
        try:
            document = json.loads(body)
        except ValueError:
            return None
        return "".join(
            part if isinstance(part, str) else _stringify(_lookup(document, part.path)) for part in self._parts
        )


def _lookup(document: Any, path: Sequence[PathStep]) -> Any:
    current = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                return None
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return None
            current = current[step]
    return current


class Router:
    """Maps a message body to a route key, with the ``$default`` fallback AWS applies."""

    def __init__(self, expression: str, route_keys: Collection[str]) -> None:
        self.expression = RouteSelectionExpression(expression)
        self._custom_routes = frozenset(key for key in route_keys if key not in RESERVED_ROUTES)
        self._has_default = DEFAULT in route_keys

    def select(self, body: str) -> str | None:
        """The route key for ``body``; None means no route matches and there is no ``$default``."""
        selected = self.expression.evaluate(body)
        if selected is not None and selected in self._custom_routes:
            return selected
        return DEFAULT if self._has_default else None
