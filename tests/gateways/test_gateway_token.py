"""Gateway tokens: shown once, stored only as a hash."""

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from gateways.models import Gateway

pytestmark = pytest.mark.django_db


def issue(serial):
    out = StringIO()
    call_command("gateway_token", serial, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def test_it_prints_a_token_and_stores_only_its_hash(gateway):
    token = issue(gateway.serial)
    assert len(token) >= 40
    gateway.refresh_from_db()
    assert gateway.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(g)::text FROM gateways_gateway g WHERE id = %s", [gateway.pk])
        stored_row = cursor.fetchone()[0]
    assert token not in stored_row


def test_it_finds_the_gateway_by_token(gateway):
    token = issue(gateway.serial)
    assert Gateway.objects.for_token(token).get() == gateway
    assert not Gateway.objects.for_token(token + "x").exists()


def test_it_replaces_the_old_token(gateway):
    old = issue(gateway.serial)
    new = issue(gateway.serial)
    assert old != new
    assert not Gateway.objects.for_token(old).exists()
    assert Gateway.objects.for_token(new).get() == gateway


def test_it_revokes_a_token(gateway):
    token = issue(gateway.serial)
    gateway.revoke_token()
    assert not Gateway.objects.for_token(token).exists()


def test_it_refuses_an_unknown_serial(gateway):
    with pytest.raises(CommandError, match="no gateway with serial 'NOPE'"):
        issue("NOPE")
