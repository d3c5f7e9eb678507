"""Pages of the tenants app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "tenants"

urlpatterns: list[URLPattern | URLResolver] = []
