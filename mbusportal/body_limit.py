"""ASGI middleware that refuses oversized request bodies with 413 as they arrive.

Django's ASGI handler spools a whole body to disk before any view runs, so
a view alone cannot stop a client that sends gigabytes (or lies in, or
omits, Content-Length). This counts the bytes as they arrive and answers
413 as soon as the limit is passed.
"""

from __future__ import annotations

import json
from typing import Any

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable, Scope

Message = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Any, *, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.limit:
            await self._refuse(send)
            return
        received = 0
        exceeded = False

        async def counting_receive() -> Any:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    exceeded = True
                    # Django stops reading and abandons the request.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Any) -> None:
            if not exceeded:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if exceeded:
            await self._refuse(send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))  # type: ignore[call-overload]
        for name, value in headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return 0

    async def _refuse(self, send: ASGISendCallable) -> None:
        body = json.dumps({"error": f"the body is larger than {self.limit} bytes; split the payload"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
                "trailers": False,
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
