"""Telling people about alarms: who gets what, when, and through which channel.

- A new **critical** alarm goes at once to the first contacts subscribed to it
  (`AlarmSubscription`), and to tenants who opted in to leak alarms of their own
  unit (`LeakAlarmOptIn`, only while their tenancy runs; those go at once
  whatever the severity). A database trigger queues the `notify_alarm` job as
  the alarm row commits, so the worker, which LISTENs, starts within
  milliseconds; `sweep` every minute is the safety net.
- While it stays open and unacknowledged it is repeated every
  ALARM_REPEAT_MINUTES to each first contact, and escalated once to the
  escalation contacts after ALARM_ESCALATE_AFTER_MINUTES. Acknowledging or
  clearing stops both.
- **Warnings** (and info, for subscriptions from "info") are collected into a
  digest per person, sent when the oldest waiting entry is
  ALARM_DIGEST_MINUTES old.
- An alarm re-raised (same gateway, meter and type) within ALARM_EPISODE_MINUTES
  of being cleared is the same **episode**: nobody is told of it again.

Every attempt is an `AlarmNotification` row (whom, which address, what, when,
the error), unique per episode, person, kind and round while not failed, and
claimed with a conditional update, so that two workers never send one twice.
Channels are small classes with `notify(message)`; e-mail is the one there is.
"""

from __future__ import annotations

import logging
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db.models import Max, Min, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from gateways.access import is_operator
from gateways.models import (
    SEVERITY_RANK,
    TENANT_ALARM_TYPES,
    Alarm,
    AlarmEpisode,
    AlarmNotification,
    AlarmSubscription,
    LeakAlarmOptIn,
    NotificationKind,
    Severity,
    SubscriptionRole,
)
from readings.models import Property, Tenancy

log = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "gateways.alarm-unsubscribe"
# A row claimed this long ago and neither sent nor failed belongs to a worker that died: it is marked
# failed, so that the next sweep plans it again.
ABANDONED_AFTER = timedelta(minutes=10)
# Failed attempts of one message before the sweep gives up on it.
MAX_ATTEMPTS = 3


# --- Channels -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """What a channel delivers: to whom, a subject, a text and an HTML body, and where to unsubscribe."""

    to: str
    subject: str
    text: str
    html: str
    unsubscribe_url: str = ""


class ChannelError(Exception):
    """The channel could not deliver; the text says why (it is stored on the notification row)."""


class Channel:
    """One way of reaching a person (e-mail now; SMS or push later, behind the same `notify`)."""

    name: ClassVar[str]

    def notify(self, message: Message) -> None:
        """Deliver `message` or raise ChannelError."""
        raise NotImplementedError


class EmailChannel(Channel):
    """E-mail through Django's configured backend (SMTP in production), text with an HTML alternative."""

    name = "email"

    def notify(self, message: Message) -> None:
        headers = {"Auto-Submitted": "auto-generated"}
        if message.unsubscribe_url:
            # RFC 8058: mail programs offer "unsubscribe" and POST to the link without opening it.
            headers["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
            headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers=headers,
        )
        email.attach_alternative(message.html, "text/html")
        try:
            email.send()
        except smtplib.SMTPRecipientsRefused as error:
            raise ChannelError(
                "; ".join(f"{code} {text.decode(errors='replace')}" for code, text in error.recipients.values())
            ) from error
        except (smtplib.SMTPException, OSError) as error:
            raise ChannelError(str(error) or type(error).__name__) from error


CHANNELS: dict[str, Channel] = {EmailChannel.name: EmailChannel()}


# --- Unsubscribe links ----------------------------------------------------------------------------


def unsubscribe_token(target: AlarmSubscription | LeakAlarmOptIn) -> str:
    """The signed part of an unsubscribe link: which subscription or opt-in, and its secret."""
    kind = "s" if isinstance(target, AlarmSubscription) else "l"
    return signing.dumps([kind, target.pk, target.unsubscribe_token], salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_target(token: str) -> AlarmSubscription | LeakAlarmOptIn | None:
    """The subscription or opt-in a link names, if its signature and secret are right; else None."""
    try:
        kind, pk, secret = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    model: Any = AlarmSubscription if kind == "s" else LeakAlarmOptIn if kind == "l" else None
    if model is None or not isinstance(pk, int):
        return None
    target = model.objects.select_related("user").filter(pk=pk, unsubscribe_token=secret).first()
    return target  # type: ignore[no-any-return]


def unsubscribe_url(target: AlarmSubscription | LeakAlarmOptIn) -> str:
    return str(settings.PORTAL_URL) + reverse("gateways:alarm-unsubscribe", args=[unsubscribe_token(target)])


# --- Who is told ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    user_id: int
    address: str
    language: str
    subscription: AlarmSubscription | None = None
    opt_in: LeakAlarmOptIn | None = None


def _may_see(user: Any, property_id: int | None) -> bool:
    if property_id is None:
        return is_operator(user)
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return Property.objects.for_manager(user).filter(pk=property_id).exists()


def subscribers(alarm: Alarm, *, role: str) -> list[Recipient]:
    """The people subscribed to `alarm` in `role` at its severity who may see it, one entry per person
    (a subscription to the alarm's property before one to all properties)."""
    subscriptions = AlarmSubscription.objects.active().filter(role=role).select_related("user")
    if alarm.property_id is None:
        subscriptions = subscriptions.filter(property__isnull=True)
    else:
        subscriptions = subscriptions.filter(Q(property_id=alarm.property_id) | Q(property__isnull=True))
    rank = SEVERITY_RANK[Severity(alarm.severity)]
    chosen: dict[int, Recipient] = {}
    for subscription in subscriptions.order_by("property_id", "pk"):  # NULLs (all properties) last
        if subscription.user_id in chosen or SEVERITY_RANK[Severity(subscription.minimum_severity)] > rank:
            continue
        if not _may_see(subscription.user, alarm.property_id):
            continue
        chosen[subscription.user_id] = Recipient(
            user_id=subscription.user_id,
            address=subscription.address(),
            language=subscription.language,
            subscription=subscription,
        )
    return list(chosen.values())


def tenants_to_tell(alarm: Alarm) -> list[Recipient]:
    """Tenants who opted in to leak alarms of the alarm's unit and live there on the day it was raised."""
    if alarm.type not in TENANT_ALARM_TYPES or alarm.installation is None:
        return []
    unit_id = alarm.installation.unit_id
    day = timezone.localtime(alarm.raised_at, alarm.installation.unit.property.zone).date()
    recipients = []
    for opt_in in LeakAlarmOptIn.objects.filter(unit_id=unit_id, active=True).select_related("user"):
        tenancy = (
            Tenancy.objects.filter(unit_id=unit_id, tenant_id=opt_in.user_id)
            .overlapping(day, day)
            .order_by("-move_in")
            .first()
        )
        if tenancy is None or not opt_in.user.is_active:
            continue
        recipients.append(
            Recipient(user_id=opt_in.user_id, address=opt_in.user.email, language=tenancy.language, opt_in=opt_in)
        )
    return recipients


# --- Planning -------------------------------------------------------------------------------------


def episode_of(alarm: Alarm) -> int:
    """The id of the first alarm of `alarm`'s episode, recorded the first time it is asked."""
    link = AlarmEpisode.objects.filter(alarm_id=alarm.pk).first()
    if link is not None:
        return link.episode_id
    since = alarm.raised_at - timedelta(minutes=settings.ALARM_EPISODE_MINUTES)
    previous = (
        Alarm.objects.filter(
            # (system alarms have no gateway: NULL matches NULL here, as the one-open-alarm rule counts them)
            Q(gateway_id=alarm.gateway_id) if alarm.gateway_id is not None else Q(gateway__isnull=True),
            installation_id=alarm.installation_id,
            type=alarm.type,
            cleared_at__gte=since,
            raised_at__lt=alarm.raised_at,
        )
        .exclude(pk=alarm.pk)
        .order_by("-cleared_at")
        .first()
    )
    episode = episode_of(previous) if previous is not None else alarm.pk
    link, _created = AlarmEpisode.objects.get_or_create(alarm_id=alarm.pk, defaults={"episode_id": episode})
    return link.episode_id


def _plan(alarm: Alarm, episode: int, kind: str, recipients: Iterable[Recipient], *, round: int = 0) -> None:
    """Rows for the messages not planned (or sent) before; the unique index drops what another worker planned."""
    rows = []
    for recipient in recipients:
        failed = AlarmNotification.objects.filter(
            episode_id=episode, recipient_id=recipient.user_id, kind=kind, round=round
        ).exclude(error="")
        if failed.count() >= MAX_ATTEMPTS:
            continue
        rows.append(
            AlarmNotification(
                alarm=alarm,
                episode_id=episode,
                recipient_id=recipient.user_id,
                address=recipient.address,
                kind=kind,
                round=round,
                language=recipient.language,
                subscription=recipient.subscription,
                opt_in=recipient.opt_in,
            )
        )
    AlarmNotification.objects.bulk_create(rows, ignore_conflicts=True)


def plan_new(alarm: Alarm) -> None:
    """The first messages of a newly seen alarm: immediate (critical; tenants' leak alarms) or a digest entry."""
    episode = episode_of(alarm)
    if alarm.cleared_at is not None:
        return  # over before anyone was told
    _plan(alarm, episode, NotificationKind.IMMEDIATE, tenants_to_tell(alarm))
    first = subscribers(alarm, role=SubscriptionRole.FIRST)
    if alarm.severity == Severity.CRITICAL:
        if alarm.acknowledged_at is None:
            _plan(alarm, episode, NotificationKind.IMMEDIATE, first)
    else:
        _plan(alarm, episode, NotificationKind.DIGEST, first)


def plan_follow_ups(alarm: Alarm, *, now: datetime) -> None:
    """Repeats and the escalation of an open, unacknowledged critical alarm that are due at `now`."""
    episode = episode_of(alarm)
    repeat_every = timedelta(minutes=settings.ALARM_REPEAT_MINUTES)
    # Round n is due n intervals after the person was first told (rounds missed while no worker ran are
    # not made up: only the latest is sent).
    told = (
        AlarmNotification.objects.filter(
            episode_id=episode, kind__in=[NotificationKind.IMMEDIATE, NotificationKind.REPEAT], sent_at__isnull=False
        )
        .values("recipient_id")
        .annotate(first=Min("sent_at"), rounds=Max("round"))
    )
    first_told = {row["recipient_id"]: (row["first"], row["rounds"]) for row in told}
    due = []
    for recipient in subscribers(alarm, role=SubscriptionRole.FIRST):
        if recipient.user_id not in first_told:
            continue  # never told: the immediate message is still to come (or failed and is retried)
        first, rounds = first_told[recipient.user_id]
        round = int((now - first) / repeat_every)
        if round > rounds:
            due.append((recipient, round))
    for recipient, round in due:
        _plan(alarm, episode, NotificationKind.REPEAT, [recipient], round=round)
    start = Alarm.objects.filter(pk=episode).values_list("raised_at", flat=True).first() or alarm.raised_at
    if now - start >= timedelta(minutes=settings.ALARM_ESCALATE_AFTER_MINUTES):
        _plan(alarm, episode, NotificationKind.ESCALATION, subscribers(alarm, role=SubscriptionRole.ESCALATION))


# --- Sending --------------------------------------------------------------------------------------


def _portal_link(name: str, *args: Any) -> str:
    return str(settings.PORTAL_URL) + reverse(name, args=args)


def _alarm_context(alarm: Alarm, *, for_tenant: bool) -> dict[str, Any]:
    zone = alarm.property.zone if alarm.property is not None else timezone.get_default_timezone()
    installation = alarm.installation
    return {
        "alarm": alarm,
        "raised_at": timezone.localtime(alarm.raised_at, zone),
        "unit": installation.unit if installation is not None else None,
        "meter": installation,
        "alarm_url": _portal_link("tenants:home")
        if for_tenant
        else _portal_link("admin:gateways_alarm_change", alarm.pk),
        "dashboard_url": "" if for_tenant else _portal_link("gateways:alarm-dashboard"),
    }


def _render(template: str, context: dict[str, Any]) -> tuple[str, str, str]:
    subject = render_to_string(f"gateways/email/{template}_subject.txt", context)
    return (
        " ".join(subject.split()),
        render_to_string(f"gateways/email/{template}.txt", context),
        render_to_string(f"gateways/email/{template}.html", context),
    )


def _unsubscribe_for(row: AlarmNotification) -> str:
    target = row.subscription or row.opt_in
    return unsubscribe_url(target) if target is not None else ""


def _message(row: AlarmNotification) -> Message:
    """The message of one planned row, in the row's language."""
    alarm = row.alarm
    tenant = row.opt_in_id is not None
    with translation.override(row.language):
        context = {
            **_alarm_context(alarm, for_tenant=tenant),
            "kind": row.kind,
            "round": row.round,
            "repeat_minutes": settings.ALARM_REPEAT_MINUTES,
            "escalate_minutes": settings.ALARM_ESCALATE_AFTER_MINUTES,
            "unsubscribe_url": _unsubscribe_for(row),
            "LANGUAGE_CODE": translation.get_language(),
        }
        subject, text, html = _render("leak_tenant" if tenant else "alarm", context)
    return Message(to=row.address, subject=subject, text=text, html=html, unsubscribe_url=context["unsubscribe_url"])


def _finish(rows: Iterable[AlarmNotification], *, error: str = "") -> None:
    ids = [row.pk for row in rows]
    if error:
        AlarmNotification.objects.filter(pk__in=ids).update(error=error[:2000])
    else:
        AlarmNotification.objects.filter(pk__in=ids).update(sent_at=timezone.now())


def _deliver(rows: list[AlarmNotification], message: Message | None) -> bool:
    if message is None or not message.to:
        _finish(rows, error="no e-mail address")
        return False
    try:
        CHANNELS[rows[0].channel].notify(message)
    except ChannelError as error:
        log.warning("alarm notification %s to %s not sent: %s", [r.pk for r in rows], message.to, error)
        _finish(rows, error=str(error) or "not delivered")
        return False
    _finish(rows)
    return True


def claim(row_id: int) -> bool:
    """Whether this caller took the planned row (a conditional update: only one caller changes it)."""
    return (
        AlarmNotification.objects.filter(pk=row_id, claimed_at__isnull=True, error="").update(claimed_at=timezone.now())
        == 1
    )


def send_pending(*, alarm_id: int | None = None) -> int:
    """Send the planned immediate, repeat and escalation messages (of one alarm, or all); returns how many
    this caller sent."""
    pending = AlarmNotification.objects.filter(claimed_at__isnull=True, error="").exclude(kind=NotificationKind.DIGEST)
    if alarm_id is not None:
        pending = pending.filter(alarm_id=alarm_id)
    sent = 0
    for row_id in list(pending.order_by("pk").values_list("pk", flat=True)):
        if not claim(row_id):
            continue
        row = AlarmNotification.objects.select_related(
            "alarm__property", "alarm__gateway", "alarm__installation__unit", "subscription", "opt_in"
        ).get(pk=row_id)
        alarm = row.alarm
        if row.kind != NotificationKind.IMMEDIATE and (alarm.acknowledged_at or alarm.cleared_at):
            _finish([row], error="not sent: the alarm was acknowledged or cleared first")
            continue
        sent += _deliver([row], _message(row))
    return sent


def send_digests(*, now: datetime) -> int:
    """One digest per person whose oldest waiting entry is ALARM_DIGEST_MINUTES old; returns how many sent."""
    due_before = now - timedelta(minutes=settings.ALARM_DIGEST_MINUTES)
    waiting = (
        AlarmNotification.objects.filter(kind=NotificationKind.DIGEST, claimed_at__isnull=True, error="")
        .values("recipient_id")
        .annotate(oldest=Min("created_at"))
        .filter(oldest__lte=due_before)
    )
    sent = 0
    for recipient_id in [row["recipient_id"] for row in waiting]:
        mark = secrets.token_hex(8)
        # Claim the person's whole batch at once: another worker's update finds nothing left.
        claimed = AlarmNotification.objects.filter(
            recipient_id=recipient_id, kind=NotificationKind.DIGEST, claimed_at__isnull=True, error=""
        ).update(claimed_at=timezone.now(), claim=mark)
        if not claimed:
            continue
        rows = list(
            AlarmNotification.objects.filter(claim=mark)
            .select_related("alarm__property", "alarm__gateway", "alarm__installation__unit", "subscription")
            .order_by("alarm__raised_at")
        )
        sent += _deliver(rows, _digest_message(rows))
    return sent


def _digest_message(rows: list[AlarmNotification]) -> Message:
    last = rows[-1]
    with translation.override(last.language):
        entries = [_alarm_context(row.alarm, for_tenant=False) for row in rows]
        unsubscribe = _unsubscribe_for(last)
        context = {
            "entries": entries,
            "minutes": settings.ALARM_DIGEST_MINUTES,
            "dashboard_url": _portal_link("gateways:alarm-dashboard"),
            "unsubscribe_url": unsubscribe,
            "LANGUAGE_CODE": translation.get_language(),
        }
        subject, text, html = _render("digest", context)
    return Message(to=last.address, subject=subject, text=text, html=html, unsubscribe_url=unsubscribe)


# --- The jobs' bodies -----------------------------------------------------------------------------


def notify_alarm(alarm_id: int) -> int:
    """A new alarm: plan its first messages and send those due at once; returns how many were sent."""
    alarm = Alarm.objects.select_related("property", "installation__unit__property").filter(pk=alarm_id).first()
    if alarm is None:
        return 0  # deleted meanwhile
    plan_new(alarm)
    return send_pending(alarm_id=alarm_id)


def sweep(*, now: datetime | None = None) -> int:
    """Everything due: alarms not seen yet (the job did not run), repeats, escalations, digests, and rows of
    workers that died mid-send. Returns how many messages this caller sent."""
    now = now or timezone.now()
    AlarmNotification.objects.filter(claimed_at__lt=now - ABANDONED_AFTER, sent_at__isnull=True, error="").update(
        error="abandoned: the worker stopped before it was sent"
    )
    unseen = Alarm.objects.open().filter(episode_link__isnull=True).order_by("pk")
    for alarm in unseen.select_related("property", "installation__unit__property"):
        plan_new(alarm)
    # Failed first messages are tried again (up to MAX_ATTEMPTS), as long as the alarm is still open.
    retry = (
        AlarmNotification.objects.exclude(error="")
        .filter(kind=NotificationKind.IMMEDIATE, alarm__cleared_at__isnull=True)
        .values_list("alarm_id", flat=True)
        .distinct()
    )
    for alarm in Alarm.objects.filter(pk__in=list(retry)).select_related("property", "installation__unit__property"):
        if alarm.severity == Severity.CRITICAL or alarm.type in TENANT_ALARM_TYPES:
            plan_new(alarm)
    follow_up = Alarm.objects.open().filter(
        severity=Severity.CRITICAL, acknowledged_at__isnull=True, episode_link__isnull=False
    )
    for alarm in follow_up.select_related("property", "installation__unit__property"):
        plan_follow_ups(alarm, now=now)
    sent = send_pending()
    return sent + send_digests(now=now)
