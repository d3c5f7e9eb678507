"""The pages of tenant accounts: accepting an invitation (setting the first password) and Django's
password reset in the portal's look, limited so that the form cannot flood a mailbox.

The reset mail is made and sent by a job (`send_reset_mails`, tenants/tasks.py), never in the request:
the answer must take as long for an unknown address as for a known one, or its timing tells who has a
login. Its link is made from PORTAL_URL, not from the Host of a request anyone can send.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from mbusportal.login_throttling import client_ip
from tenants.models import PasswordResetRequest, TenantAccount
from tenants.tokens import invitation_tokens

# Logging in after the first password is set is done here, not through django-axes' backend: holding
# the link proves the mailbox, which is what the throttle guards against guessing.
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


class SpendTheLinkOnce(auth_views.PasswordResetConfirmView):
    """A link that sets a password works once, also when it is used in two windows at the same moment.

    Django checks the token when the request arrives; two requests can both pass before either saves,
    and each would set its own password and log in, one of them with a password that no longer works.
    Here the user row is locked and the token checked again on it: the second request waits for the
    first, finds the link spent (the token covers the password) and gets the spent-link page.
    """

    def form_valid(self, form: SetPasswordForm[Any]) -> HttpResponse:
        with transaction.atomic():
            user = type(form.user)._default_manager.select_for_update().get(pk=form.user.pk)
            token = self.request.session.get(auth_views.INTERNAL_RESET_SESSION_TOKEN)
            if not self.token_generator.check_token(user, token):
                self.validlink = False
                return self.render_to_response(self.get_context_data())
            form.user = user
            return super().form_valid(form)


class AcceptInvitationView(SpendTheLinkOnce):
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
        if self.validlink:  # not when another window spent the link first
            TenantAccount.objects.update_or_create(user=form.user, defaults={"accepted_at": timezone.now()})
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Ask for a reset link. Whether the address is known, or the request was over the limit, the answer
    is the same page; only a known address within the limits gets a mail."""

    template_name = "tenants/password_reset_form.html"
    success_url = reverse_lazy("tenants:password_reset_done")

    def form_valid(self, form: Any) -> HttpResponse:
        # The same work for every address, known or not: count, and hand the rest to the job.
        asked = over_reset_limit(email=form.cleaned_data["email"], client=client_ip(self.request))
        if asked is not None:
            from tenants.tasks import send_password_reset  # the tasks import this module

            send_password_reset.defer(request_id=asked.pk, language=translation.get_language())
        return HttpResponseRedirect(self.get_success_url())


def over_reset_limit(*, email: str, client: str | None) -> PasswordResetRequest | None:
    """Count this request; the request when it may cause a mail, None when the address or the client asked
    more often in the last hour than PASSWORD_RESET_MAX_PER_ADDRESS / PASSWORD_RESET_MAX_PER_CLIENT allow
    (counted in the database, so across processes)."""
    hour_ago = timezone.now() - timedelta(hours=1)
    PasswordResetRequest.objects.filter(requested_at__lt=hour_ago).delete()  # what no limit looks at any more
    email = email.strip().lower()
    asked = PasswordResetRequest.objects.create(email=email, client_ip=client)
    recent = PasswordResetRequest.objects.filter(requested_at__gte=hour_ago)
    by_address = recent.filter(email=email).count()
    by_client = recent.filter(client_ip=client).count() if client else 0
    over = by_address > settings.PASSWORD_RESET_MAX_PER_ADDRESS or by_client > settings.PASSWORD_RESET_MAX_PER_CLIENT
    return None if over else asked


def send_reset_mails(*, request_id: int, language: str) -> int:
    """E-mail a reset link to each login (active, with a password) of the request's address; how many.

    Each mail is in the recipient's language (their latest tenancy's), else in the language of the page
    the request came from. A mail server that fails raises, so that the job is tried again. The request's
    row is gone after an hour (over_reset_limit), and with it the job's work.
    """
    asked = PasswordResetRequest.objects.filter(pk=request_id).first()
    if asked is None:
        return 0
    sent = 0
    for user in PasswordResetForm().get_users(asked.email):
        link = settings.PORTAL_URL + reverse(
            "tenants:password_reset_confirm",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        )
        context = {"user": user, "link": link, "hours": reset_link_hours()}
        with translation.override(_language_of(user, default=language)):
            subject = render_to_string("tenants/email/password_reset_subject.txt", context)
            message = EmailMultiAlternatives(
                " ".join(subject.split()),
                render_to_string("tenants/email/password_reset.txt", context),
                to=[user.email],
            )
            message.attach_alternative(render_to_string("tenants/email/password_reset.html", context), "text/html")
        message.send()
        sent += 1
    return sent


def _language_of(user: Any, *, default: str) -> str:
    """The language a person chose for the portal's mail to them: their latest tenancy's, else `default`."""
    latest = user.tenancies.order_by("-move_in", "-pk").values_list("language", flat=True).first()
    return latest or (default if default in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE)


def reset_link_hours() -> int:
    return int(settings.PASSWORD_RESET_TIMEOUT) // 3600


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "tenants/password_reset_done.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "hours": reset_link_hours()}


class PasswordResetConfirmView(SpendTheLinkOnce):
    """The reset link. After the new password the person logs in as usual, so a lock-out by the login
    throttle still runs its course (a reset does not lift it)."""

    template_name = "tenants/set_password.html"
    success_url = reverse_lazy("tenants:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "tenants/password_reset_complete.html"
