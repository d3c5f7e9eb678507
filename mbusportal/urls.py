from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from mbusportal import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("", include("readings.urls")),
    path("", include("gateways.urls")),
    path("", include("settlements.urls")),
    # Browsers ask for /favicon.ico on every page, whatever the HTML says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
