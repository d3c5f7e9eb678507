"""Pages of the tenants app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from tenants import accounts, views

app_name = "tenants"

urlpatterns: list[URLPattern | URLResolver] = [
    path("home/", views.home, name="home"),
    path("home/downloads/", views.downloads, name="downloads"),
    path("home/leak-alarms/", views.leak_alarms, name="leak-alarms"),
    # Accounts (tenants/accounts.py)
    path("invitation/<uidb64>/<token>/", accounts.AcceptInvitationView.as_view(), name="invitation"),
    path("password-reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", accounts.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/", accounts.PasswordResetConfirmView.as_view(), name="password_reset_confirm"
    ),
    path("password-reset/done/", accounts.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
