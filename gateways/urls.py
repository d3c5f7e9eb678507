"""Pages and endpoints of the gateways app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "gateways"

urlpatterns: list[URLPattern | URLResolver] = []
