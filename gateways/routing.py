"""Websocket routes of the gateways app."""

from django.urls import URLPattern, URLResolver, path

from gateways.consumers import AlarmConsumer

websocket_urlpatterns: list[URLPattern | URLResolver] = [
    path("ws/alarms/", AlarmConsumer.as_asgi(), name="ws-alarms"),
]
