"""Gateways (the machines that push readings) and the alarms they cause."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models, transaction
from django.db.models import JSONField, Q, Value
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from gateways import alarm_text
from gateways.access import SYSTEM_PERMISSION
from gateways.people import person_name
from gateways.topics import validate_serial
from readings.models import Property
from readings.scoping import AnyUser, managed_by
from readings.validators import validate_no_control_characters

TOKEN_BYTES = 32


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token.

    Tokens are 256 random bits, so a fast hash is enough: there is nothing to
    brute-force, and authentication stays one indexed lookup.
    """
    return hashlib.sha256(token.encode()).hexdigest()


# Mosquitto's PBKDF2-SHA512 password format ("$7$", mosquitto_passwd's default since 2.0).
MOSQUITTO_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12


def mosquitto_password_hash(password: str, *, salt: bytes | None = None) -> str:
    """The password as Mosquitto's password_file stores it: $7$iterations$salt$hash, base64.

    Used for gateway tokens (256 random bits, so the iteration count is no
    weakness) and for the subscriber's own account.
    """
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, MOSQUITTO_ITERATIONS)
    return f"$7${MOSQUITTO_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


_MOSQUITTO_HASH = re.compile(r"\$7\$([1-9][0-9]{0,6})\$([A-Za-z0-9+/]{16})\$([A-Za-z0-9+/]{86}==)")


def parse_mosquitto_hash(password_hash: str) -> tuple[int, str, str] | None:
    """(iterations, base64 salt, base64 digest) of a hash in mosquitto_password_hash's format; None otherwise.

    Whatever else a database row holds is no password hash, and must never
    be written where Mosquitto reads one.
    """
    match = _MOSQUITTO_HASH.fullmatch(password_hash)
    if match is None:
        return None
    return int(match[1]), match[2], match[3]


class GatewayQuerySet(models.QuerySet["Gateway"]):
    def for_token(self, token: str) -> GatewayQuerySet:
        return self.filter(token_hash=hash_token(token))

    def for_manager(self, user: AnyUser) -> GatewayQuerySet:
        return managed_by(self, user, "property__organisation__")


def gateway_status_q(status: str, now: datetime | None = None) -> Q:
    """The condition of `Gateway.status(now) == status`: its SQL twin, for the admin's filter and the
    dashboard's conditional counts."""
    seen_after = (now or timezone.now()) - settings.GATEWAY_OFFLINE_AFTER
    match status:
        case GatewayStatus.INACTIVE:
            return Q(active=False)
        case GatewayStatus.NEVER_SEEN:
            return Q(active=True, last_seen_at__isnull=True)
        case GatewayStatus.OFFLINE:
            return Q(active=True, last_seen_at__lte=seen_after)
        case GatewayStatus.ONLINE:
            return Q(active=True, last_seen_at__gt=seen_after)
    raise ValueError(f"unknown gateway status {status!r}")


class GatewayStatus(models.TextChoices):
    ONLINE = "online", _("Online")
    OFFLINE = "offline", _("Offline")
    NEVER_SEEN = "never_seen", _("Never seen")
    INACTIVE = "inactive", _("Deactivated")


class Gateway(models.Model):
    property = models.ForeignKey(
        "readings.Property", on_delete=models.PROTECT, related_name="gateways", verbose_name=_("property")
    )
    serial = models.CharField(_("serial"), max_length=64, unique=True, validators=[validate_serial])
    name = models.CharField(_("name"), max_length=200, validators=[validate_no_control_characters])
    # Only the hash is stored; the token itself is shown once when issued.
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, null=True, blank=True, editable=False)
    token_issued_at = models.DateTimeField(_("token issued at"), null=True, blank=True, editable=False)
    # The same token as the gateway's MQTT password, hashed the way Mosquitto's
    # password file wants it (`manage.py mqtt_acl` writes the file).
    mqtt_password_hash = models.CharField(
        _("MQTT password hash"), max_length=200, blank=True, default="", editable=False
    )
    # The MQTT broker has not confirmed the gateway's latest change yet (gateways/broker.py), and
    # the token issued last, encrypted, while the broker does not have it. (Database defaults too,
    # for rows inserted in SQL.)
    mqtt_pending = models.BooleanField(
        _("change pending at the MQTT broker"), default=False, db_default=False, editable=False
    )
    mqtt_password_sealed = models.TextField(blank=True, default="", db_default="", editable=False)
    last_seen_at = models.DateTimeField(_("last seen at"), null=True, blank=True)
    active = models.BooleanField(_("active"), default=True)
    # Fixed-window request counter of the ingestion API (see gateways/sql.py).
    rate_window_start = models.DateTimeField(_("rate window start"), null=True, blank=True, editable=False)
    rate_window_count = models.PositiveIntegerField(_("requests in rate window"), default=0, editable=False)

    objects = GatewayQuerySet.as_manager()

    class Meta:
        verbose_name = _("gateway")
        verbose_name_plural = _("gateways")

    def __str__(self) -> str:
        return f"{self.name} ({self.serial})"

    def status(self, now: datetime | None = None) -> GatewayStatus:
        """Deactivated, never seen, or online/offline by GATEWAY_OFFLINE_AFTER_HOURS since it last posted."""
        if not self.active:
            return GatewayStatus.INACTIVE
        if self.last_seen_at is None:
            return GatewayStatus.NEVER_SEEN
        now = now or timezone.now()
        if now - self.last_seen_at > settings.GATEWAY_OFFLINE_AFTER:
            return GatewayStatus.OFFLINE
        return GatewayStatus.ONLINE

    def deactivate(self) -> None:
        """Refuse the gateway's payloads from now on: inactive, and its token no longer works (also at the broker)."""
        with transaction.atomic():
            self.active = False
            self.save(update_fields=["active"])
            self.revoke_token()

    def issue_token(self) -> str:
        """Replace the gateway's token with a new one and return it (the only time it is visible)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with transaction.atomic():
            self.token_hash = hash_token(token)
            self.mqtt_password_hash = mosquitto_password_hash(token)
            self.token_issued_at = timezone.now()
            self.save(update_fields=["token_hash", "mqtt_password_hash", "token_issued_at"])
            self.sync_with_broker(token=token)
        return token

    def revoke_token(self) -> None:
        with transaction.atomic():
            self.token_hash = None
            self.mqtt_password_hash = ""
            self.mqtt_password_sealed = ""
            self.save(update_fields=["token_hash", "mqtt_password_hash", "mqtt_password_sealed"])
            self.sync_with_broker()

    def sync_with_broker(self, *, token: str | None = None, previous_serial: str | None = None) -> None:
        """Mark the gateway pending at the MQTT broker and push it there after the commit.

        `token`: the one just issued, kept sealed until the broker has it;
        `previous_serial`: the broker client to remove after a rename. Does
        nothing unless the portal manages the broker (gateways/broker.py).
        """
        from gateways import broker  # it imports this module

        if not broker.enabled():
            return
        self.mqtt_pending = True
        if token is not None:
            self.mqtt_password_sealed = broker.seal(token)
        self.save(update_fields=["mqtt_pending", "mqtt_password_sealed"])
        broker.push_on_commit([self.serial] if previous_serial is None else [self.serial, previous_serial])


class AlarmType(models.TextChoices):
    LOW_BATTERY = "low_battery", _("Low battery")
    METER_ERROR = "meter_error", _("Meter error flag")
    GATEWAY_OFFLINE = "gateway_offline", _("Gateway offline")
    METER_SILENT = "meter_silent", _("Meter not reporting")
    REGISTER_BACKWARDS = "register_backwards", _("Register went backwards")
    LEAK_SUSPECTED = "leak_suspected", _("Leak suspected")
    SUPPLY_IMBALANCE = "supply_imbalance", _("Supply and units disagree")
    BURST_SUSPECTED = "burst_suspected", _("Burst suspected")
    # System alarms: about the portal itself, with no property or gateway (gateways/system_alarms.py).
    POOL_SATURATED = "pool_saturated", _("Connection pool saturated")
    MQTT_DISCONNECTED = "mqtt_disconnected", _("MQTT subscriber disconnected")
    RELAY_BEHIND = "relay_behind", _("Alarm relay behind")
    JOB_FAILING = "job_failing", _("Job failing repeatedly")
    # About one gateway, for its property's managers (gateways/health.py).
    GATEWAY_REFUSING = "gateway_refusing", _("Gateway sending refused readings")


class Severity(models.TextChoices):
    INFO = "info", _("Info")
    WARNING = "warning", _("Warning")
    CRITICAL = "critical", _("Critical")


class AlarmQuerySet(models.QuerySet["Alarm"]):
    def open(self) -> AlarmQuerySet:
        return self.filter(cleared_at__isnull=True)

    def for_manager(self, user: AnyUser) -> AlarmQuerySet:
        return managed_by(self, user, "property__organisation__")

    def system(self) -> AlarmQuerySet:
        """Alarms about the portal itself (no property), for staff."""
        return self.filter(property__isnull=True)

    @transaction.atomic
    def acknowledge(self, user: AnyUser, *, note: str = "") -> int:
        """Mark the open, unacknowledged alarms as seen by `user` now, each with an "acknowledged"
        event carrying `note` (which may be empty); returns how many changed."""
        # Locked first, so that two people acknowledging at once record one event per alarm, not two.
        ids = list(
            Alarm.objects.select_for_update()
            .filter(pk__in=self.values("pk"), cleared_at__isnull=True, acknowledged_at__isnull=True)
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        Alarm.objects.filter(pk__in=ids).update(acknowledged_at=now, acknowledged_by=user)
        _record(ids, user, AlarmEventKind.ACKNOWLEDGED, note, now)
        return len(ids)

    @transaction.atomic
    def clear(self, user: AnyUser, *, note: str) -> int:
        """Close the open alarms as `user` now (acknowledging any not yet acknowledged), each with a
        "cleared" event carrying `note`; returns how many. ValueError for a blank note: a person who
        clears an alarm says why, so the next one on duty can read it."""
        note = note.strip()
        if not note:
            raise ValueError("a note is required to clear an alarm")
        self.acknowledge(user)
        ids = list(
            Alarm.objects.select_for_update()
            .filter(pk__in=self.values("pk"), cleared_at__isnull=True)
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        Alarm.objects.filter(pk__in=ids).update(cleared_at=now, cleared_by=user)
        _record(ids, user, AlarmEventKind.CLEARED, note, now)
        return len(ids)


def _record(alarm_ids: list[int], user: AnyUser, kind: str, text: str, at: datetime) -> None:
    """One history event per alarm, in the caller's transaction."""
    actor = _actor(user)
    AlarmEvent.objects.bulk_create(
        [AlarmEvent(alarm_id=pk, actor=actor, kind=kind, text=text.strip(), at=at) for pk in alarm_ids]
    )


class Alarm(models.Model):
    """Something on site that needs a person's attention.

    Every insert and update is announced by a trigger (see the migration)
    with pg_notify('gateway_alarm', '{"id": …, "property_id": …, "op": …}');
    listeners read the row itself from this table.
    """

    # Both NULL for a system alarm (about the portal itself, seen by staff only).
    gateway = models.ForeignKey(
        Gateway, on_delete=models.CASCADE, null=True, blank=True, related_name="alarms", verbose_name=_("gateway")
    )
    installation = models.ForeignKey(
        "readings.MeterInstallation",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alarms",
        verbose_name=_("meter installation"),
    )
    # Denormalised from the gateway so that fan-out per property needs no join.
    property = models.ForeignKey(
        "readings.Property",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alarms",
        verbose_name=_("property"),
    )
    type = models.CharField(_("type"), max_length=32, choices=AlarmType.choices)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    # What happened, as data: rendered in the reader's language by gateways.alarm_text.
    params = models.JSONField(_("parameters"), default=dict, blank=True, db_default=Value({}, JSONField()))
    # The English text as raised (search, exports, the read API); the only text of legacy alarms.
    message = models.TextField(_("message"))
    raised_at = models.DateTimeField(_("raised at"), default=timezone.now)
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acknowledged by"),
    )
    cleared_at = models.DateTimeField(_("cleared at"), null=True, blank=True)
    cleared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("cleared by"),
    )
    # Who is to deal with it: a manager of the property's organisation (an operator for a system alarm).
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    # Both set by a trigger (migration 0008), never by Python: change_seq is
    # the position of the row's latest change in commit order (the relay's
    # catch-up cursor), raised_seq that of its insert. The database defaults
    # only make the ORM leave the columns out of INSERT and read them back.
    change_seq = models.BigIntegerField(db_default=0, editable=False)
    raised_seq = models.BigIntegerField(db_default=0, editable=False)

    objects = AlarmQuerySet.as_manager()

    class Meta:
        verbose_name = _("alarm")
        verbose_name_plural = _("alarms")
        permissions = [("view_system_alarms", _("Can see the portal's own alarms and System page"))]
        constraints = [
            # At most one open alarm per gateway, meter and type; NULL
            # installation (a gateway-level alarm) counts as one value, and
            # so does NULL gateway (a system alarm: one open per type).
            models.UniqueConstraint(
                fields=["gateway", "installation", "type"],
                condition=Q(cleared_at__isnull=True),
                nulls_distinct=False,
                name="alarm_one_open_per_gateway_meter_type",
            ),
        ]
        indexes = [
            # The dashboard's snapshot: open alarms of some properties.
            models.Index(
                fields=["property", "-raised_at"], condition=Q(cleared_at__isnull=True), name="alarm_open_idx"
            ),
            # The relay's catch-up: changes after its cursor, in order.
            models.Index(fields=["change_seq"], name="alarm_change_seq_idx"),
        ]

    def __str__(self) -> str:
        return gettext("%(severity)s: %(type)s at %(gateway)s") % {
            "severity": self.get_severity_display(),
            "type": self.get_type_display(),
            "gateway": self.gateway if self.gateway_id is not None else gettext("the portal"),
        }

    def text(self) -> str:
        """What happened, in the active language (the stored English text for legacy alarms)."""
        return alarm_text.render(self.type, self.params, self.message)

    def assignable_users(self) -> models.QuerySet[Any]:
        """Who may be given this alarm: the active managers of its property's organisation, or for a
        system alarm the active operators (superusers, staff with the system permission)."""
        users = get_user_model()._default_manager.filter(is_active=True)
        if self.property_id is None:
            app_label, codename = SYSTEM_PERMISSION.split(".")
            may_watch = Q(user_permissions__content_type__app_label=app_label, user_permissions__codename=codename) | Q(
                groups__permissions__content_type__app_label=app_label, groups__permissions__codename=codename
            )
            ids = users.filter(Q(is_superuser=True) | Q(may_watch, is_staff=True)).values("pk")
        else:
            ids = users.filter(managed_organisations__properties=self.property_id).values("pk")
        # Through ids: the permission joins would otherwise repeat a user once per path.
        return users.filter(pk__in=ids).order_by("username")

    @transaction.atomic
    def assign(self, *, by: AnyUser, to: Any | None) -> None:
        """Give the alarm to `to` (None: to nobody), recorded in its history; ValueError if `to` may not see it."""
        if to is not None and not self.assignable_users().filter(pk=to.pk).exists():
            raise ValueError("this user may not see the alarm")
        Alarm.objects.filter(pk=self.pk).update(assigned_to=to)
        self.assigned_to = to
        kind = AlarmEventKind.ASSIGNED if to is not None else AlarmEventKind.UNASSIGNED
        AlarmEvent.objects.create(alarm=self, actor=_actor(by), kind=kind, assignee=to)

    def add_note(self, *, by: AnyUser, text: str) -> AlarmEvent:
        """A note in the alarm's history; ValueError for a blank one."""
        text = text.strip()
        if not text:
            raise ValueError("a note cannot be empty")
        return AlarmEvent.objects.create(alarm=self, actor=_actor(by), kind=AlarmEventKind.NOTE, text=text)

    def history(self) -> list[HistoryEntry]:
        """What happened to the alarm, oldest first: raised, then its events, and a clear that the system
        did itself (the condition went away) and so has no event."""
        entries = [HistoryEntry(kind="raised", at=self.raised_at)]
        events = self.events.select_related("actor", "assignee").order_by("at", "pk")
        entries += [HistoryEntry(kind=e.kind, at=e.at, actor=e.actor, text=e.text, assignee=e.assignee) for e in events]
        if self.cleared_at is not None and not any(entry.kind == AlarmEventKind.CLEARED for entry in entries):
            entries.append(HistoryEntry(kind=AlarmEventKind.CLEARED, at=self.cleared_at, actor=self.cleared_by))
        return entries


def _actor(user: AnyUser) -> Any | None:
    return user if user.is_authenticated else None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    kind: str
    at: datetime
    actor: Any | None = None
    text: str = ""
    assignee: Any | None = None

    @property
    def who(self) -> str:
        """The actor's name for people ("" for nobody: raised, or cleared by the system), never their
        address: everyone who may see the alarm reads its history (gateways.people)."""
        return person_name(self.actor) if self.actor is not None else ""

    @property
    def whom(self) -> str:
        return person_name(self.assignee) if self.assignee is not None else ""


class AlarmEventKind(models.TextChoices):
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    NOTE = "note", _("Note")
    ASSIGNED = "assigned", _("Assigned")
    UNASSIGNED = "unassigned", _("Unassigned")
    CLEARED = "cleared", _("Cleared")


# Long enough for what happened on site and what was done; short enough to read on a phone.
NOTE_MAX_LENGTH = 2000


class AlarmEvent(models.Model):
    """One step in an alarm's life after it was raised: acknowledged, a note, assigned, cleared.

    Written in the same transaction as the change it records (AlarmQuerySet.acknowledge
    and .clear, Alarm.assign and .add_note), so the history never disagrees with the alarm.
    """

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="events", verbose_name=_("alarm"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=AlarmEventKind.choices)
    text = models.TextField(_("note"), blank=True, max_length=NOTE_MAX_LENGTH)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("alarm event")
        verbose_name_plural = _("alarm events")
        indexes = [
            # Alarm.history(): one alarm's events in time order.
            models.Index(fields=["alarm", "at"], name="alarmevent_alarm_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on alarm {self.alarm_id} at {self.at:%Y-%m-%d %H:%M}"


class RawFrameQuerySet(models.QuerySet["RawFrame"]):
    def for_manager(self, user: AnyUser) -> RawFrameQuerySet:
        return managed_by(self, user, "gateway__property__organisation__")


class TimeSource(models.TextChoices):
    METER = "meter", _("the meter's clock")
    RECEIVED_AT = "received_at", _("received_at (the frame has no clock)")
    # The frame had a clock, but marked invalid, no valid date, or too far from received_at.
    UNTRUSTED_CLOCK = "untrusted_clock", _("received_at (the meter's clock was not trusted)")


class RawFrame(models.Model):
    """An M-Bus frame as a gateway forwarded it, kept FRAMES_RETENTION_DAYS for re-processing.

    Written by POST /api/v1/frames in the same transaction as the readings
    decoded from it; `error` says why a frame stored with ?partial=1 was
    rejected. `records` is what the decoder made of each record
    (gateways.frames.record_result: its problem where it was flagged, which
    one gave the reading and its time), `warnings` what the answer warned
    about, `time_source` where the reading's time came from.
    `reprocess_frames` decodes them again after a decoder fix.
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="raw_frames", verbose_name=_("gateway"))
    # When the gateway received the frame from the meter (its own clock).
    received_at = models.DateTimeField(_("received at"))
    stored_at = models.DateTimeField(_("stored at"), db_default=Now())
    frame = models.BinaryField(_("frame"))
    installation = models.ForeignKey(
        "readings.MeterInstallation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("meter"),
    )
    # The timestamp of the reading stored from this frame (the meter's clock or received_at).
    reading_at = models.DateTimeField(_("reading at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    records = models.JSONField(_("records"), default=list, blank=True)
    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    time_source = models.CharField(_("time of the reading from"), max_length=16, blank=True, choices=TimeSource.choices)

    objects = RawFrameQuerySet.as_manager()

    class Meta:
        verbose_name = _("raw M-Bus frame")
        verbose_name_plural = _("raw M-Bus frames")
        indexes = [
            # purge_raw_frames (received_at < cut-off) and reprocess_frames --since.
            models.Index(fields=["received_at"], name="rawframe_received_idx"),
        ]

    def __str__(self) -> str:
        return f"frame from {self.gateway_id} received {self.received_at:%Y-%m-%d %H:%M}"


class RelayCursor(models.Model):
    """The last alarm change the relay published (see gateways/relay.py).

    A restarted relay resumes from here, so alarms changed while it was down
    still reach the browsers that stayed connected.
    """

    name = models.CharField(max_length=32, primary_key=True)
    change_seq = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.change_seq}"


class LeakRuleQuerySet(models.QuerySet["LeakRule"]):
    def for_manager(self, user: AnyUser) -> LeakRuleQuerySet:
        return managed_by(self, user, "property__organisation__")


class LeakRule(models.Model):
    """When a property's water meters raise "leak suspected" and "burst suspected" (gateways/leak.py).

    A property without a row is evaluated with the field defaults: a leak is
    water flowing at least 2 l/h in every hour for 24 hours; a burst more
    than 0.5 m³ in one hour.
    """

    property = models.OneToOneField(
        "readings.Property", on_delete=models.CASCADE, related_name="leak_rule", verbose_name=_("property")
    )
    leak_enabled = models.BooleanField(_("raise leak alarms"), default=True)
    leak_min_flow_lph = models.DecimalField(
        _("leak: least flow (l/h)"),
        max_digits=7,
        decimal_places=2,
        default=Decimal("2"),
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(Decimal("10000"))],
        help_text=_("Water counts as flowing in an hour when the meter advanced at least this many litres."),
    )
    leak_hours = models.PositiveSmallIntegerField(
        _("leak: hours without pause"),
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(168)],
        help_text=_("A leak is suspected when water flowed in every hour for this long (1 to 168 hours)."),
    )
    burst_enabled = models.BooleanField(_("raise burst alarms"), default=True)
    burst_m3_per_hour = models.DecimalField(
        _("burst: more than (m³ in one hour)"),
        max_digits=7,
        decimal_places=3,
        default=Decimal("0.5"),
        validators=[MinValueValidator(Decimal("0.001")), MaxValueValidator(Decimal("1000"))],
        help_text=_("A burst is suspected when a meter counts more than this in one hour."),
    )

    objects = LeakRuleQuerySet.as_manager()

    class Meta:
        verbose_name = _("leak and burst rule")
        verbose_name_plural = _("leak and burst rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(leak_min_flow_lph__gt=0)
                & Q(leak_hours__gte=1)
                & Q(leak_hours__lte=168)
                & Q(burst_m3_per_hour__gt=0),
                name="leakrule_positive_thresholds",
            ),
        ]

    def __str__(self) -> str:
        return gettext("Leak and burst rule of %(property)s") % {"property": self.property}


class LeakCheckCursor(models.Model):
    """When the leak and burst evaluation last started (one row, id 1).

    The next run looks at the meters of gateways that delivered since then
    (gateways/leak.py), so an evaluation every few minutes reads only the
    meters with new readings.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"leak check started {self.started_at:%Y-%m-%d %H:%M}"


class DeliveryTally(models.Model):
    """Readings a gateway delivered, accepted and refused, per five minutes (gateways/health.py).

    Written by the ingestion (gateways/sql.py, tally_delivery); read and pruned by the periodic
    health check, which raises GATEWAY_REFUSING for a gateway refused too often over the last hour.
    """

    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="+")
    bucket = models.DateTimeField()
    accepted = models.PositiveIntegerField(default=0, db_default=0)
    refused = models.PositiveIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "bucket"], name="deliverytally_one_per_bucket")]
        indexes = [models.Index(fields=["bucket"], name="deliverytally_bucket_idx")]

    def __str__(self) -> str:
        counts = f"{self.accepted} accepted, {self.refused} refused"
        return f"gateway {self.gateway_id} at {self.bucket:%Y-%m-%d %H:%M}: {counts}"


# --- Alarm notifications (gateways/notifications.py) ---------------------------------------------

SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}

# The alarms a tenant may opt in to for their own unit: water running (and bursts, where a type says so).
TENANT_ALARM_TYPES = frozenset({AlarmType.LEAK_SUSPECTED.value} | {t.value for t in AlarmType if "burst" in t.value})


def new_unsubscribe_token() -> str:
    return secrets.token_urlsafe(24)


class SubscriptionRole(models.TextChoices):
    FIRST = "first", _("First contact")
    ESCALATION = "escalation", _("Escalation contact")


class AlarmSubscriptionQuerySet(models.QuerySet["AlarmSubscription"]):
    def for_manager(self, user: AnyUser) -> AlarmSubscriptionQuerySet:
        """A manager's own subscriptions (a superuser's: everyone's)."""
        if getattr(user, "is_superuser", False) and user.is_active:
            return self
        if not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(user_id=user.pk)

    def active(self) -> AlarmSubscriptionQuerySet:
        return self.filter(active=True)


class AlarmSubscription(models.Model):
    """Someone who wants alarm e-mails: of one property (or, empty, of every property they may see and,
    for operators, of the system), from a severity up, as first contact or as escalation contact."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="alarm_subscriptions",
        verbose_name=_("user"),
    )
    property = models.ForeignKey(
        "readings.Property",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="alarm_subscriptions",
        verbose_name=_("property"),
        help_text=_("Empty: every property you manage (for operators also the system's own alarms)."),
    )
    minimum_severity = models.CharField(
        _("from severity"), max_length=16, choices=Severity.choices, default=Severity.CRITICAL
    )
    role = models.CharField(_("role"), max_length=16, choices=SubscriptionRole.choices, default=SubscriptionRole.FIRST)
    email = models.EmailField(_("e-mail"), blank=True, help_text=_("Empty: the e-mail address of the user's account."))
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
    active = models.BooleanField(_("active"), default=True)
    unsubscribe_token = models.CharField(max_length=64, default=new_unsubscribe_token, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = AlarmSubscriptionQuerySet.as_manager()

    class Meta:
        verbose_name = _("alarm subscription")
        verbose_name_plural = _("alarm subscriptions")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "property", "role"],
                nulls_distinct=False,
                name="alarm_subscription_one_per_user_property_role",
                violation_error_message=_("You already have a subscription of this role for this property."),
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(user)s: %(property)s from %(severity)s") % {
            "user": self.user,
            "property": self.property or gettext("all properties"),
            "severity": self.get_minimum_severity_display(),
        }

    def address(self) -> str:
        return self.email or getattr(self.user, "email", "") or ""

    def clean(self) -> None:
        """Only a property the user manages; "all properties" only for staff (it covers the system's alarms)."""
        super().clean()
        if self.user_id is None:
            return
        if self.property_id is None:
            if not self.user.is_staff:
                raise ValidationError({"property": _("Choose a property: only staff may subscribe to all of them.")})
        elif not Property.objects.for_manager(self.user).filter(pk=self.property_id).exists():
            raise ValidationError({"property": _("You can only subscribe to alarms of properties you manage.")})


class LeakAlarmOptIn(models.Model):
    """A tenant who wants an e-mail when a leak alarm is raised on their own unit (while they live there)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="leak_alarm_opt_ins", verbose_name=_("user")
    )
    unit = models.ForeignKey(
        "readings.Unit", on_delete=models.CASCADE, related_name="leak_alarm_opt_ins", verbose_name=_("unit")
    )
    active = models.BooleanField(_("active"), default=True)
    unsubscribe_token = models.CharField(max_length=64, default=new_unsubscribe_token, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("leak alarm opt-in")
        verbose_name_plural = _("leak alarm opt-ins")
        constraints = [models.UniqueConstraint(fields=["user", "unit"], name="leak_opt_in_one_per_user_unit")]

    def __str__(self) -> str:
        return gettext("leak alarms of %(unit)s") % {"unit": self.unit}


class AlarmEpisode(models.Model):
    """The notification sender has seen this alarm: the first alarm of its episode (itself, or an alarm of
    the same gateway, meter and type cleared less than ALARM_EPISODE_MINUTES before it was raised)."""

    alarm = models.OneToOneField(Alarm, on_delete=models.CASCADE, primary_key=True, related_name="episode_link")
    episode = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = _("alarm episode")
        verbose_name_plural = _("alarm episodes")

    def __str__(self) -> str:
        return f"{self.alarm_id} in {self.episode_id}"


class NotificationKind(models.TextChoices):
    IMMEDIATE = "immediate", _("Immediate")
    REPEAT = "repeat", _("Repeat")
    ESCALATION = "escalation", _("Escalation")
    DIGEST = "digest", _("Digest")


class AlarmNotificationQuerySet(models.QuerySet["AlarmNotification"]):
    def for_manager(self, user: AnyUser) -> AlarmNotificationQuerySet:
        return managed_by(self, user, "alarm__property__organisation__")


class AlarmNotification(models.Model):
    """One attempt to tell one person about one alarm: planned, claimed by one worker, then sent or failed.

    Unique per episode, person, kind and round while not failed, so that two workers plan it once; claimed
    with a conditional update (claimed_at from NULL), so that only one sends it.
    """

    alarm = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("alarm"))
    episode = models.ForeignKey(Alarm, on_delete=models.CASCADE, related_name="+", verbose_name=_("episode"))
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="alarm_notifications",
        verbose_name=_("recipient"),
    )
    address = models.CharField(_("address"), max_length=254, blank=True)
    channel = models.CharField(_("channel"), max_length=16, default="email")
    kind = models.CharField(_("kind"), max_length=16, choices=NotificationKind.choices)
    # Repeats count 1, 2, …; everything else is round 0.
    round = models.PositiveIntegerField(_("round"), default=0)
    language = models.CharField(_("language"), max_length=8, default=settings.LANGUAGE_CODE)
    # The unsubscribe link of the message: the subscription or the tenant's opt-in it came from.
    subscription = models.ForeignKey(
        AlarmSubscription, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    opt_in = models.ForeignKey(LeakAlarmOptIn, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(_("planned at"), auto_now_add=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    # The worker's mark on a batch it claimed (a digest: several rows, one message).
    claim = models.CharField(max_length=32, blank=True, default="")
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")

    objects = AlarmNotificationQuerySet.as_manager()

    class Meta:
        verbose_name = _("alarm notification")
        verbose_name_plural = _("alarm notifications")
        constraints = [
            models.UniqueConstraint(
                fields=["episode", "recipient", "kind", "round"],
                condition=Q(error=""),
                name="alarm_notification_once_per_episode",
            ),
        ]
        indexes = [
            # The sender's queue: rows planned and not yet claimed.
            models.Index(fields=["created_at"], condition=Q(claimed_at__isnull=True), name="alarm_notif_pending_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.alarm_id} → {self.address or self.recipient_id}"
