"""The pages of tenant accounts: accepting an invitation (setting the first password) and Django's
password reset in the portal's look, limited so that the form cannot flood a mailbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import SetPasswordForm
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse_lazy
from django.utils import timezone

from mbusportal.login_throttling import client_ip
from tenants.models import PasswordResetRequest, TenantAccount
from tenants.tokens import invitation_tokens

# Logging in after the first password is set is done here, not through django-axes' backend: holding
# the link proves the mailbox, which is what the throttle guards against guessing.
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


class AcceptInvitationView(auth_views.PasswordResetConfirmView):
    """The invitation link: the tenant sets their password and lands logged in on their home page.

    An expired or spent link shows the same template with `validlink` false, saying how to get a new one.
    """

    token_generator = invitation_tokens
    template_name = "tenants/set_password.html"
    reset_url_token = "set-password"  # noqa: S105 (a placeholder in the URL, no secret)
    post_reset_login = True
    post_reset_login_backend = LOGIN_BACKEND
    success_url = reverse_lazy("home")
    extra_context = {"invitation": True}

    def form_valid(self, form: SetPasswordForm[Any]) -> HttpResponse:
        response = super().form_valid(form)
        TenantAccount.objects.update_or_create(user=form.user, defaults={"accepted_at": timezone.now()})
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. Whether the address is known, or the request was over the limit, the answer
    is the same page; only a known address within the limits gets a mail."""

    template_name = "tenants/password_reset_form.html"
    email_template_name = "tenants/email/password_reset.txt"
    html_email_template_name = "tenants/email/password_reset.html"
    subject_template_name = "tenants/email/password_reset_subject.txt"
    success_url = reverse_lazy("tenants:password_reset_done")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.extra_email_context = {"hours": reset_link_hours()}

    def form_valid(self, form: Any) -> HttpResponse:
        if over_reset_limit(email=form.cleaned_data["email"], client=client_ip(self.request)):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


def over_reset_limit(*, email: str, client: str | None) -> bool:
    """Count this request; True when the address or the client asked more often in the last hour than
    PASSWORD_RESET_MAX_PER_ADDRESS / PASSWORD_RESET_MAX_PER_CLIENT allow (counted in the database, so
    across processes)."""
    hour_ago = timezone.now() - timedelta(hours=1)
    PasswordResetRequest.objects.filter(requested_at__lt=hour_ago).delete()  # what no limit looks at any more
    email = email.strip().lower()
    PasswordResetRequest.objects.create(email=email, client_ip=client)
    recent = PasswordResetRequest.objects.filter(requested_at__gte=hour_ago)
    by_address = recent.filter(email=email).count()
    by_client = recent.filter(client_ip=client).count() if client else 0
    return by_address > settings.PASSWORD_RESET_MAX_PER_ADDRESS or by_client > settings.PASSWORD_RESET_MAX_PER_CLIENT


def reset_link_hours() -> int:
    return int(settings.PASSWORD_RESET_TIMEOUT) // 3600


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "tenants/password_reset_done.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "hours": reset_link_hours()}


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """The reset link. After the new password the person logs in as usual, so a lock-out by the login
    throttle still runs its course (a reset does not lift it)."""

    template_name = "tenants/set_password.html"
    success_url = reverse_lazy("tenants:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "tenants/password_reset_complete.html"
