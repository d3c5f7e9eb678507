"""FlowControlMiddleware: daphne's request is found through its send; any other server is left alone.

Back-pressure and broken streams under a real daphne are tested in
tests/readings/test_export_streaming.py.
"""

import functools

from mbusportal.flow_control import FlowControlMiddleware, daphne_request


class FakeTwistedRequest:
    channel = object()

    def registerProducer(self, producer, streaming):
        raise AssertionError("not under daphne")


async def test_it_finds_the_request_behind_daphnes_send():
    request = FakeTwistedRequest()

    async def handle_reply(protocol, message):
        return None

    assert daphne_request(functools.partial(handle_reply, request)) is request


async def test_it_passes_messages_through_under_other_servers():
    sent = []

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def receive():
        return {"type": "http.disconnect"}

    assert daphne_request(send) is None
    await FlowControlMiddleware(app)({"type": "http"}, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body", "http.response.body"]
