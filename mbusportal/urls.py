from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from mbusportal import views

urlpatterns = [
    path("health", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("readings.urls")),
    path("", include("gateways.urls")),
    path("", include("settlements.urls")),
    # Browsers ask for /favicon.ico on every page, whatever the HTML says.
    path("favicon.ico", RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
]
