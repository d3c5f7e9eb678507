"""Pages of the tenants app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from tenants import views

app_name = "tenants"

urlpatterns: list[URLPattern | URLResolver] = [
    path("home/", views.home, name="home"),
    path("home/downloads/", views.downloads, name="downloads"),
]
