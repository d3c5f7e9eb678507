"""Pages and endpoints of the readings app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "readings"

urlpatterns: list[URLPattern | URLResolver] = []
