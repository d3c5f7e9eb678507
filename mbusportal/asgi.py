"""ASGI entry point, served by daphne: HTTP goes to Django, websockets to Channels."""

import gc
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mbusportal.settings")

from mbusportal.configured import settings_or_exit

settings_or_exit()  # a bad setting: one line and exit, before daphne binds its port

# Django must be set up before anything imports models.
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from gateways.relay import start_in_daphne as start_alarm_relay_in_daphne  # noqa: E402
from gateways.routing import websocket_urlpatterns  # noqa: E402
from gateways.system_alarms import start_in_daphne as start_pool_watch_in_daphne  # noqa: E402
from mbusportal.access_log import install as install_access_log_redaction  # noqa: E402
from mbusportal.body_limit import API_PREFIX, BodyLimit  # noqa: E402
from mbusportal.daphne_limits import install as install_daphne_body_limits  # noqa: E402
from mbusportal.db import close_pool_at_daphne_shutdown  # noqa: E402
from mbusportal.flow_control import FlowControlMiddleware  # noqa: E402
from mbusportal.gateway_handler import GatewayApiHandler, PathPrefixRouter  # noqa: E402
from mbusportal.request_metrics import RequestMetricsMiddleware  # noqa: E402
from mbusportal.unavailable import WebsocketDatabaseUnavailable  # noqa: E402

http_app: Any = django_asgi_app
if settings.DEBUG:
    # Development only: in production a reverse proxy serves STATIC_ROOT.
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    http_app = ASGIStaticFilesHandler(django_asgi_app)

# The gateway API runs with only the middleware an API needs (see mbusportal/gateway_handler.py).
# Every route refuses oversized bodies before Django buffers them; under daphne, before daphne does.
http_app = BodyLimit(PathPrefixRouter(prefix=API_PREFIX, matched=GatewayApiHandler(), other=http_app))
install_daphne_body_limits()
# Daphne's access log keeps no secret that a link's path carries (invitations, resets, unsubscribing).
install_access_log_redaction()

# Flow control outermost: it reads daphne's own `send` (the connection behind it), which any wrapper
# would hide. Inside it every request is counted (mbusportal.metrics, README "Monitoring").
application = ProtocolTypeRouter(
    {
        # Streamed responses (CSV exports) wait for slow clients instead of piling up in memory;
        # websocket consumers learn how much piles up for theirs.
        "http": FlowControlMiddleware(RequestMetricsMiddleware(http_app)),
        "websocket": FlowControlMiddleware(
            RequestMetricsMiddleware(
                AllowedHostsOriginValidator(
                    WebsocketDatabaseUnavailable(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
                )
            )
        ),
    }
)

close_pool_at_daphne_shutdown()
start_alarm_relay_in_daphne()
start_pool_watch_in_daphne()

# What is loaded by now (Django, the apps, their URLs and templates) lives as long as the process.
# Frozen, the garbage collector leaves it out of its full collections, which the objects of
# each 10,000-reading payload would otherwise set off again and again (about 8 ms of CPU per
# payload, measured). What is garbage already goes first.
gc.collect()
gc.freeze()
