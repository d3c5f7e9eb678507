"""Pages and endpoints of the settlements app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "settlements"

urlpatterns: list[URLPattern | URLResolver] = []
