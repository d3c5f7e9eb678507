from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.generic import RedirectView

from mbusportal import admin_dashboard, metrics, views

admin.site.site_header = _("M-Bus portal")
admin.site.site_title = _("M-Bus portal")

urlpatterns = [
    path("health", views.health, name="health"),
    # For the monitoring system only: a token or an allowed address (README, "Monitoring").
    path("metrics", metrics.metrics_view, name="metrics"),
    # The admin's landing page with the managers' dashboard (before the admin's own index, same URL).
    path("admin/", admin_dashboard.index, name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # The admin's language switch posts here (set_language).
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("readings.urls")),
    # Before gateways: its /api/v1/openapi.json describes the gateway and the read API together.
    path("", include("integrations.urls")),
    path("", include("gateways.urls")),
    path("", include("settlements.urls")),
    path("", include("tenants.urls")),
    path("api/v1/exchange/", include("integrations.exchange.urls")),
    # Browsers ask for /favicon.ico on every page, whatever the HTML says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
