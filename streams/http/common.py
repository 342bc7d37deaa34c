"""What every HTTP module shares: one error answer (``{"error": ...}`` with a 4xx or 5xx status)
and one reader of JSON object bodies. A handler raises :class:`ApiError`; the API's middleware
answers it, so no handler builds an error response by hand."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


class ApiError(Exception):
    """An answer of ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def one_header(request: web.Request, name: str) -> str | None:
    """The one value of header ``name``, or None; 400 naming it when it was sent more than once
    (a header that says or proves who calls is ambiguous twice: a proxy may read the other)."""
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise ApiError(400, f"{name}: sent {len(values)} times; send it once")
    return values[0] if values else None


def error(status: int, message: str) -> web.Response:
    """The JSON error answer every route gives."""
    return web.json_response({"error": message}, status=status)


async def json_object(request: web.Request, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request's body as a JSON object; ``empty`` (when given) stands for a missing body.
    :class:`ApiError` 400 says what is wrong: not JSON (or not UTF-8, or nested too deeply), or
    not an object."""
    raw = await request.read()
    if not raw and empty is not None:
        return dict(empty)
    try:
        loaded = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(loaded, dict):
        raise ApiError(400, "body must be a JSON object")
    return loaded
