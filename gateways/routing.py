"""Websocket routes of the gateways app (the live alarm consumer lands here)."""

from django.urls import URLPattern, URLResolver

websocket_urlpatterns: list[URLPattern | URLResolver] = []
