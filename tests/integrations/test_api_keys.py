"""Organisation API keys: issued once in the admin, stored hashed, scoped, revocable, rate-limited."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.test import RequestFactory
from django.utils import timezone

from gateways.models import hash_token
from integrations.keys import ApiError, authenticate, authenticate_sync
from integrations.models import ApiKey, ApiKeyScope

pytestmark = pytest.mark.django_db(transaction=True)


def new_key(organisation, scope=ApiKeyScope.READ, **extra):
    key = ApiKey(organisation=organisation, name="ERP", scope=scope, **extra)
    secret = key.issue()
    key.save()
    return key, secret


def bearer(secret):
    return RequestFactory().get("/api/v1/properties", headers={"Authorization": f"Bearer {secret}"})


async def refusal(secret, *, write=False):
    with pytest.raises(ApiError) as caught:
        await authenticate(bearer(secret), write=write)
    return caught.value


async def test_it_authenticates_a_key_and_stamps_last_used(organisation, fresh_pool):
    key, secret = await sync_to_async(new_key)(organisation)
    authenticated = await authenticate(bearer(secret), write=False)
    assert (authenticated.id, authenticated.organisation_id) == (key.pk, organisation.pk)
    await key.arefresh_from_db()
    assert key.last_used_at is not None
    assert key.rate_window_count == 1


def test_it_stores_only_a_hash_of_the_key(organisation):
    key, secret = new_key(organisation)
    stored = ApiKey.objects.values().get(pk=key.pk)
    assert secret not in str(stored)
    assert stored["secret_hash"] == hash_token(secret)
    assert secret.startswith(stored["prefix"]) and len(stored["prefix"]) < len(secret) // 3


async def test_it_refuses_a_missing_or_unknown_key(organisation, fresh_pool):
    await sync_to_async(new_key)(organisation)
    request = RequestFactory().get("/api/v1/properties")
    with pytest.raises(ApiError) as caught:
        await authenticate(request, write=False)
    assert caught.value.status == 401 and caught.value.headers["WWW-Authenticate"] == "Bearer"
    assert (await refusal("mbp_not-a-key")).status == 401


async def test_it_refuses_a_revoked_key(organisation, fresh_pool):
    key, secret = await sync_to_async(new_key)(organisation)
    await sync_to_async(key.revoke)()
    error = await refusal(secret)
    assert (error.status, error.as_dict()) == (401, {"error": "unknown, revoked or expired API key"})


async def test_it_refuses_an_expired_key(organisation, fresh_pool):
    _key, secret = await sync_to_async(new_key)(organisation, expires_at=timezone.now() - timedelta(seconds=1))
    assert (await refusal(secret)).status == 401


async def test_it_accepts_a_key_until_it_expires(organisation, fresh_pool):
    _key, secret = await sync_to_async(new_key)(organisation, expires_at=timezone.now() + timedelta(hours=1))
    assert (await authenticate(bearer(secret), write=False)).organisation_id == organisation.pk


async def test_it_refuses_a_read_only_key_where_writing_is_needed(organisation, fresh_pool):
    _key, secret = await sync_to_async(new_key)(organisation)
    error = await refusal(secret, write=True)
    assert error.status == 403 and "read-only" in error.message
    _key, writer = await sync_to_async(new_key)(organisation, scope=ApiKeyScope.READ_WRITE)
    assert (await authenticate(bearer(writer), write=True)).allows_writes


def test_it_authenticates_in_sync_views_too(organisation):
    _key, secret = new_key(organisation)
    assert authenticate_sync(bearer(secret), write=False).organisation_id == organisation.pk
    with pytest.raises(ApiError) as caught:
        authenticate_sync(bearer(secret), write=True)
    assert caught.value.status == 403


async def test_it_answers_429_with_retry_after_over_the_rate(organisation, fresh_pool, settings):
    settings.API_KEY_RATE_PER_MINUTE = 3
    key, secret = await sync_to_async(new_key)(organisation)
    for _ in range(3):
        await authenticate(bearer(secret), write=False)
    error = await refusal(secret)
    assert error.status == 429
    assert 1 <= int(error.headers["Retry-After"]) <= 60
    # Another key of the same organisation has its own window.
    _other, other_secret = await sync_to_async(new_key)(organisation)
    assert (await authenticate(bearer(other_secret), write=False)).id != key.pk


# --- The admin --------------------------------------------------------------------------------


def test_it_shows_a_new_key_once_and_stores_its_hash(client, alice, organisation, property_managers):
    client.force_login(alice)
    response = client.post(
        "/admin/integrations/apikey/add/",
        {
            "organisation": organisation.pk,
            "name": "ERP nightly",
            "scope": "read",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200, response.content
    key = ApiKey.objects.get()
    secret = response.context["secret"]
    assert secret.encode() in response.content
    assert "no-store" in response["Cache-Control"]
    assert key.secret_hash == hash_token(secret) and key.created_by == alice
    # The change page never shows it again.
    assert secret.encode() not in client.get(f"/admin/integrations/apikey/{key.pk}/change/").content


def test_it_refuses_a_key_for_an_organisation_the_manager_does_not_manage(client, charlie, property_managers):
    client.force_login(charlie)
    organisation = property_managers.user_set.get(username="alice").managed_organisations.get()
    response = client.post(
        "/admin/integrations/apikey/add/",
        {
            "organisation": organisation.pk,
            "name": "Sneaky",
            "scope": "read_write",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert response.status_code == 200
    assert "organisation" in response.context["adminform"].form.errors
    assert not ApiKey.objects.exists()


def test_it_hides_another_organisations_keys_from_a_manager(
    client, charlie, organisation, other_organisation, property_managers
):
    key, _secret = new_key(organisation)
    mine, _ = new_key(other_organisation)
    client.force_login(charlie)
    assert client.get(f"/admin/integrations/apikey/{key.pk}/change/").status_code == 404
    listing = client.get("/admin/integrations/apikey/")
    assert list(listing.context["cl"].result_list) == [mine]


def test_it_revokes_keys_with_the_admin_action(client, alice, organisation, property_managers):
    key, secret = new_key(organisation)
    client.force_login(alice)
    response = client.post(
        "/admin/integrations/apikey/", {"action": "revoke", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    with pytest.raises(ApiError):
        authenticate_sync(bearer(secret), write=False)
