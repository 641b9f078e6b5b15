"""Errors aiohttp answers itself, before any handler or middleware runs (a request
line or header over its size limits, a malformed request), as JSON too.

aiohttp builds those answers in ``RequestHandler.handle_error`` as text/plain; the
API promises ``{"error": "..."}`` for every error. ``JsonErrorsRunner`` is an
``AppRunner`` whose connections use a handler that answers them as JSON.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server


def error_line(status: int, message: str | None) -> str:
    """One line for an error aiohttp met while reading the request. Pure."""
    first = (message or "").strip().splitlines()[0][:200] if (message or "").strip() else ""
    if status >= 500:
        return "the collector failed while reading the request"
    return f"malformed or oversized request: {first}" if first else "malformed or oversized request"


class _JsonErrorHandler(RequestHandler):
    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs as aiohttp does (filtered in collector.server)
        resp = web.json_response({"error": error_line(status, message)}, status=status)
        resp.force_close()
        return resp


class _JsonServer(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorsRunner(web.AppRunner):
    async def _make_server(self) -> Any:
        server = await super()._make_server()
        server.__class__ = _JsonServer  # the same server; only the connections' handler differs
        return server
