"""Pages of the tenants app (included at the site root by mbusportal/urls.py)."""

from datetime import date

from django.urls import URLPattern, URLResolver, path, register_converter

from tenants import accounts, views

app_name = "tenants"


class MonthConverter:
    """A month as YYYY-MM in a path, the first day of it in the view; no match (404) for a month that is not."""

    regex = r"\d{4}-\d{2}"

    def to_python(self, value: str) -> date:
        try:
            return date(int(value[:4]), int(value[5:]), 1)
        except ValueError:
            raise ValueError(value) from None

    def to_url(self, value: date) -> str:
        return f"{value:%Y-%m}"


register_converter(MonthConverter, "month")

urlpatterns: list[URLPattern | URLResolver] = [
    path("home/", views.home, name="home"),
    path("home/downloads/", views.downloads, name="downloads"),
    path("home/monthly/<int:tenancy_id>/", views.monthly_months, name="monthly-months"),
    path("home/monthly/<int:tenancy_id>/<month:month>/", views.monthly_month, name="monthly-month"),
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
