"""Pins on the Django, Channels, daphne, Twisted and psycopg internals that mbusportal/ overrides or reads.

mbusportal/gateway_handler.py, body_limit.py, channel_layers.py,
daphne_limits.py, flow_control.py and pools.py reach below those libraries'
public API.
An upgrade may move what they rely on without any error until traffic finds
it; these tests fail first, each naming the library, its installed version,
what changed and the module to re-read. Each module's WRITTEN_AGAINST names
the versions it was checked against; after re-reading it against a new
version, update WRITTEN_AGAINST (and its docstring) and requirements.txt.

daphne.server is read as source, never imported: importing it installs
Twisted's reactor, after which this process would look like a daphne to
mbusportal.asgi.
"""

import ast
import asyncio
import importlib.util
import inspect
import re
import time
from functools import cache
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from daphne import http_protocol
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from twisted.internet import abstract
from twisted.web import http

from mbusportal import body_limit, channel_layers, daphne_limits, flow_control, gateway_handler, pools
from mbusportal.channel_layers import LocalChannelLayer
from mbusportal.gateway_handler import GatewayApiHandler

PROJECT = Path(__file__).resolve().parents[2]
MODULES = [gateway_handler, body_limit, channel_layers, daphne_limits, flow_control, pools]


def where(module) -> str:
    return f"re-read {module.__name__.replace('.', '/')}.py against it"


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def assert_parameters(owner, name, expected, *, library, relied_on_by):
    function = getattr(owner, name, None)
    qualified = f"{owner.__module__}.{owner.__qualname__}.{name}"
    assert function is not None, f"{library} {version(library)} has no {qualified}; {where(relied_on_by)}"
    assert parameters(function) == expected, (
        f"{library} {version(library)} changed {qualified}{inspect.signature(function)}"
        f" (written against parameters {expected}); {where(relied_on_by)}"
    )


@cache
def source_tree(module_name: str) -> ast.Module:
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin is not None, f"{module_name} is gone"
    return ast.parse(Path(spec.origin).read_text())


def method_node(module_name: str, qualified: str) -> ast.AST:
    class_name, method = qualified.split(".")
    for node in ast.walk(source_tree(module_name)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == method:
                    return item
    raise AssertionError(f"{module_name}.{qualified} is gone")


def self_attributes(node: ast.AST, context: type[ast.expr_context]) -> set[str]:
    """The `self.<name>` attributes that `node` reads (ast.Load) or assigns (ast.Store)."""
    return {
        child.attr
        for child in ast.walk(node)
        if isinstance(child, ast.Attribute)
        and isinstance(child.ctx, context)
        and isinstance(child.value, ast.Name)
        and child.value.id == "self"
    }


# --- The versions each module names --------------------------------------------------------


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (PROJECT / "requirements.txt").read_text().splitlines():
        if match := re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line):
            pins[match[1].lower()] = match[2]
    return pins


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_it_runs_the_library_versions_each_module_was_written_against(module):
    for library, written_against in module.WRITTEN_AGAINST.items():
        installed = version(library)
        assert installed == written_against, (
            f"{library} is {installed}, but {module.__name__} was written against {written_against}: "
            f"{where(module)} and the pins below in this file, then update its WRITTEN_AGAINST and docstring"
        )


@pytest.mark.parametrize("module", MODULES, ids=lambda module: module.__name__)
def test_it_names_those_versions_in_the_docstring_and_requirements(module):
    pins = requirement_pins()
    for library, written_against in module.WRITTEN_AGAINST.items():
        assert f"{written_against}" in (module.__doc__ or ""), f"{module.__name__}'s docstring does not name {library}"
        assert pins.get(library.lower()) == written_against, (
            f"requirements.txt pins {library} at {pins.get(library.lower())}, "
            f"{module.__name__} was written against {written_against}"
        )


# --- gateway_handler.py: Django's BaseHandler / ASGIHandler ----------------------------------------------


def test_it_overrides_load_middleware_and_read_body_with_djangos_signatures():
    for owner, name, expected in [
        (BaseHandler, "load_middleware", ["self", "is_async"]),
        (BaseHandler, "_get_response_async", ["self", "request"]),
        (ASGIHandler, "read_body", ["self", "receive"]),
        (ASGIHandler, "create_request", ["self", "scope", "body_file"]),
    ]:
        assert_parameters(owner, name, expected, library="Django", relied_on_by=gateway_handler)
        assert parameters(getattr(GatewayApiHandler, name)) == expected
    assert inspect.iscoroutinefunction(BaseHandler._get_response_async), (  # type: ignore[attr-defined]
        f"Django {version('Django')}: BaseHandler._get_response_async is no longer async; {where(gateway_handler)}"
    )
    assert parameters(convert_exception_to_response) == ["get_response"], (
        f"Django {version('Django')} changed convert_exception_to_response; {where(gateway_handler)}"
    )
    for middleware in (SecurityMiddleware, CommonMiddleware):
        assert_parameters(
            middleware, "process_request", ["self", "request"], library="Django", relied_on_by=gateway_handler
        )
        assert_parameters(
            middleware,
            "process_response",
            ["self", "request", "response"],
            library="Django",
            relied_on_by=gateway_handler,
        )


def test_it_sets_every_middleware_attribute_djangos_request_path_reads():
    # What Django's load_middleware sets and its request path reads; the override must set the same.
    set_by_django = {
        name
        for name in self_attributes(method_node("django.core.handlers.base", "BaseHandler.load_middleware"), ast.Store)
        if name.startswith("_") and "middleware" in name
    }
    read = set()
    for method in ("get_response_async", "_get_response_async", "process_exception_by_middleware"):
        read |= {
            name
            for name in self_attributes(method_node("django.core.handlers.base", f"BaseHandler.{method}"), ast.Load)
            if name.startswith("_") and "middleware" in name
        }
    assert {"_middleware_chain", "_view_middleware"} <= set_by_django | read  # the pin itself still finds them
    handler = GatewayApiHandler()
    handler.load_middleware(is_async=True)
    missing = sorted((set_by_django | read) - set(vars(handler)))
    assert not missing, (
        f"Django {version('Django')}'s handler now uses {missing}, which GatewayApiHandler.load_middleware "
        f"does not set; {where(gateway_handler)}"
    )


async def test_it_reads_a_disconnect_as_an_aborted_request_as_django_does():
    async def disconnect():
        return {"type": "http.disconnect"}

    for handler in (ASGIHandler(), GatewayApiHandler()):
        with pytest.raises(RequestAborted):
            await handler.read_body(disconnect)
    # And Django's handle() drops such a request without an answer (body_limit.BodyLimit then answers 413).
    handle = method_node("django.core.handlers.asgi", "ASGIHandler.handle")
    guarded = [
        node
        for node in ast.walk(handle)
        if isinstance(node, ast.Try)
        and any("read_body" in ast.unparse(statement) for statement in node.body)
        and any(
            ast.unparse(h.type or ast.Name("")) == "RequestAborted" and isinstance(h.body[-1], ast.Return)
            for h in node.handlers
        )
    ]
    assert guarded, (
        f"Django {version('Django')}: ASGIHandler.handle no longer returns quietly when read_body raises "
        f"RequestAborted; re-read mbusportal/body_limit.py and mbusportal/gateway_handler.py against it"
    )


def test_it_builds_an_asgi_request_from_a_scope_and_a_body_file():
    assert_parameters(
        ASGIRequest, "__init__", ["self", "scope", "body_file"], library="Django", relied_on_by=body_limit
    )


# --- channel_layers.py: Channels' InMemoryChannelLayer -------------------------------------------------


def test_it_overrides_the_in_memory_layers_methods_with_their_signatures():
    for name, expected in [
        ("send", ["self", "channel", "message"]),
        ("receive", ["self", "channel"]),
        ("group_send", ["self", "group", "message"]),
        ("_clean_expired", ["self"]),
    ]:
        assert_parameters(InMemoryChannelLayer, name, expected, library="channels", relied_on_by=channel_layers)
        assert parameters(getattr(LocalChannelLayer, name)) == expected
    assert_parameters(
        BaseChannelLayer, "get_capacity", ["self", "channel"], library="channels", relied_on_by=channel_layers
    )
    for name in ("require_valid_channel_name", "require_valid_group_name"):
        assert callable(getattr(BaseChannelLayer, name, None)), f"channels {version('channels')} has no {name}"


async def test_it_keeps_the_in_memory_layers_state_in_the_shape_it_reads():
    layer = InMemoryChannelLayer()
    for attribute in ("channels", "groups", "expiry", "group_expiry"):
        assert hasattr(layer, attribute), (
            f"channels {version('channels')}: InMemoryChannelLayer has no `{attribute}`; {where(channel_layers)}"
        )
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    await layer.send(channel, {"type": "x"})
    queue = layer.channels[channel]
    assert isinstance(queue, asyncio.Queue), f"channels {version('channels')}: a channel is now {type(queue)}"
    expires, message = queue._queue[0]  # type: ignore[attr-defined]  # what Channels reads too
    assert isinstance(expires, float) and message == {"type": "x"}, (
        f"channels {version('channels')}: queued entries are no longer (expiry, message); {where(channel_layers)}"
    )
    assert isinstance(layer.groups["g"][channel], float), f"channels {version('channels')}: group members changed"


async def test_it_lets_channels_sweep_the_queues_it_builds():
    layer = LocalChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("g", channel)
    layer._queue(channel).put_nowait((time.time() - 1, {"type": "x"}))
    InMemoryChannelLayer._clean_expired(layer)
    assert channel not in layer.channels and channel not in layer.groups.get("g", {}), (
        f"channels {version('channels')}: _clean_expired no longer drops an expired message from a "
        f"LocalChannelLayer queue; {where(channel_layers)}"
    )


# --- daphne_limits.py and flow_control.py: daphne and Twisted ----------------------------------------------


def test_it_can_replace_the_request_class_daphne_builds():
    assert (
        issubclass(http_protocol.WebRequest, http.Request) or http_protocol.WebRequest is daphne_limits.GuardedRequest
    )
    assert issubclass(daphne_limits.GuardedRequest, http.Request)
    build = method_node("daphne.http_protocol", "HTTPFactory.buildProtocol")
    names = {node.id for node in ast.walk(build) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    assert "WebRequest" in names, (
        f"daphne {version('daphne')}: HTTPFactory.buildProtocol no longer looks up the module's WebRequest, "
        f"so daphne_limits.install() would have no effect; {where(daphne_limits)}"
    )


def test_it_overrides_twisteds_request_hooks_with_their_signatures():
    for name, expected in [
        ("gotLength", ["self", "length"]),
        ("handleContentChunk", ["self", "data"]),
        ("requestReceived", ["self", "command", "path", "version"]),
        ("connectionLost", ["self", "reason"]),
    ]:
        assert_parameters(http.Request, name, expected, library="Twisted", relied_on_by=daphne_limits)
        assert parameters(getattr(daphne_limits.GuardedRequest, name)) == expected


def test_it_finds_the_request_line_on_twisteds_channel():
    assigned = self_attributes(method_node("twisted.web.http", "HTTPChannel.lineReceived"), ast.Store)
    assert {"_command", "_path"} <= assigned, (
        f"Twisted {version('Twisted')}: HTTPChannel.lineReceived no longer sets _command and _path; "
        f"{where(daphne_limits)}"
    )


def test_it_finds_the_request_behind_daphnes_send():
    create = method_node("daphne.server", "Server.create_application")
    sends = [
        ast.unparse(keyword.value)
        for node in ast.walk(create)
        if isinstance(node, ast.Call)
        for keyword in node.keywords
        if keyword.arg == "send"
    ]
    assert sends == ["partial(self.handle_reply, protocol)"], (
        f"daphne {version('daphne')}: the application's send is now {sends}, not "
        f"functools.partial(handle_reply, protocol); {where(flow_control)}"
    )
    for name, expected in [
        ("registerProducer", ["self", "producer", "streaming"]),
        ("unregisterProducer", ["self"]),
        ("loseConnection", ["self"]),
    ]:
        assert_parameters(http.Request, name, expected, library="Twisted", relied_on_by=flow_control)


def test_it_reads_twisteds_write_buffer_where_it_is():
    for attribute in ("dataBuffer", "offset", "disconnected"):
        assert hasattr(abstract.FileDescriptor, attribute), (
            f"Twisted {version('Twisted')}: FileDescriptor has no `{attribute}`; {where(flow_control)}"
        )
    assigned = self_attributes(method_node("twisted.internet.abstract", "FileDescriptor.__init__"), ast.Store)
    assert {"_tempDataBuffer", "_tempDataLen"} <= assigned, (
        f"Twisted {version('Twisted')}: FileDescriptor no longer keeps _tempDataBuffer/_tempDataLen; "
        f"{where(flow_control)}"
    )


# --- pools.py: psycopg's Connection.wait ----------------------------------------------------------------


def test_it_overrides_wait_with_psycopgs_signature():
    expected = ["self", "gen", "interval", "timeout"]
    assert_parameters(psycopg.Connection, "wait", expected, library="psycopg", relied_on_by=pools)
    assert_parameters(psycopg.AsyncConnection, "wait", expected, library="psycopg", relied_on_by=pools)
    assert (
        parameters(pools.Connection.wait) == parameters(pools.AsyncConnection.wait) == ["self", "gen", "args", "kwargs"]
    )
