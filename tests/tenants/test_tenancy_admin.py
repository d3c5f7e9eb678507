"""The tenancy admin with tenant accounts (tenants/admin.py): a manager registers a new tenant's tenancy,
invites them, sees their login's state and who is on paper, and never a password or another
organisation's people."""

from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from readings.models import Tenancy
from tenants.models import TenantAccount
from tests.tenants.helpers import add_url, link_in, new_tenancy_post, parts_of

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def manager(client, alice, property_managers):
    client.force_login(alice)
    return client


def test_it_creates_the_tenants_login_and_sends_the_invitation_in_their_language(
    manager, unit, smtp_server, django_capture_on_commit_callbacks, settings
):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(add_url(), new_tenancy_post(unit))
    assert response.status_code == 302
    tenancy = Tenancy.objects.get(unit=unit)
    tove = tenancy.tenant
    assert (tove.username, tove.email, tove.first_name, tove.last_name) == (
        "tove@example.org",
        "tove@example.org",
        "Tove",
        "Hansen",
    )
    assert not tove.has_usable_password()
    assert (tove.is_staff, tove.is_superuser) == (False, False)
    assert tenancy.phone == "+45 12 34-56 78"
    assert TenantAccount.objects.get(user=tove).invited_at is not None
    (message,) = smtp_server.to("tove@example.org")
    assert message["Subject"] == "Dit login til M-Bus-portalen hos Organisation A"
    text, html = parts_of(message)
    assert "Kære Tove Hansen" in text and "Kære Tove Hansen" in html
    assert '<html lang="da">' in html
    assert "tove@example.org" in text  # the user name to log in with
    assert link_in(message).startswith(settings.PORTAL_URL + "/invitation/")


def test_it_links_the_invitation_to_the_portal_url_whatever_host_the_manager_named(
    manager, unit, smtp_server, django_capture_on_commit_callbacks, settings
):
    # Any host name ALLOWED_HOSTS lets in (an internal one, or one a forged request names) is not where
    # tenants reach the portal.
    settings.ALLOWED_HOSTS = ["portal.example.org", "internal.example.org"]
    settings.PORTAL_URL = "https://portal.example.org"
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(add_url(), new_tenancy_post(unit), HTTP_HOST="internal.example.org")
    (message,) = smtp_server.to("tove@example.org")
    assert link_in(message).startswith("https://portal.example.org/invitation/")
    assert "internal.example.org" not in "".join(parts_of(message))


def test_it_writes_the_invitation_in_english_for_an_english_tenancy(
    manager, unit, smtp_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(add_url(), new_tenancy_post(unit, language="en"))
    (message,) = smtp_server.to("tove@example.org")
    assert message["Subject"] == "Your login to the M-Bus portal of Organisation A"
    assert "Dear Tove Hansen" in parts_of(message)[0]


def test_it_registers_a_tenant_without_email_for_paper_and_sends_nothing(
    manager, unit, smtp_server, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(add_url(), new_tenancy_post(unit, email=""))
    assert response.status_code == 302
    tenant = Tenancy.objects.get(unit=unit).tenant
    assert tenant.email == "" and tenant.username.startswith("tenant")
    assert not tenant.has_usable_password()
    assert smtp_server.messages == []


def test_it_reuses_the_login_of_a_tenant_of_the_same_organisation(manager, unit, tenancy, tina):
    tina.email = "tina@example.org"
    tina.save()
    Tenancy.objects.filter(pk=tenancy.pk).update(move_out=date(2025, 1, 1))
    other_unit = unit.__class__.objects.create(property=unit.property, label="2 th", floor_area_m2=50)
    post = new_tenancy_post(other_unit, email="Tina@Example.org", send_invitation=None)
    assert manager.post(add_url(), post).status_code == 302
    assert Tenancy.objects.get(unit=other_unit).tenant == tina
    assert User.objects.filter(email__iexact="tina@example.org").count() == 1


def test_it_never_reuses_or_reveals_a_login_of_another_organisation(manager, unit, other_meter, paul):
    paul.email = "paul@example.org"
    paul.save()
    Tenancy.objects.create(unit=other_meter.unit, tenant=paul, move_in=date(2024, 1, 1))
    response = manager.post(add_url(), new_tenancy_post(unit, email="paul@example.org", send_invitation=None))
    assert response.status_code == 302
    new_tenant = Tenancy.objects.get(unit=unit).tenant
    assert new_tenant != paul
    # paul's user name was the address' first choice; the new login gets another, not telling why.
    assert new_tenant.username != paul.username


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "   "}, "name", "This field is required."),
        # The name goes into the invitation, statements and letters: no line breaks smuggled into them.
        (
            {"name": "Vic Tim\r\nBcc: x@evil.example"},
            "name",
            "Must not contain line breaks, tabs or other control characters.",
        ),
        ({"email": "not-an-address"}, "email", "Enter a valid email address."),
        (
            {"email": "x" * 64 + "@" + "a" * 190 + ".dk"},
            "email",
            "Ensure this value has at most 254 characters (it has 258).",
        ),
        ({"phone": "call me"}, "phone", "Enter a phone number of digits, spaces, + and - only."),
        ({"language": "xx"}, "language", "Select a valid choice. xx is not one of the available choices."),
        ({"move_in": "31.02.2025"}, "move_in", "Enter a valid date."),
    ],
)
def test_it_answers_bad_input_with_a_field_error_and_writes_nothing(manager, unit, overrides, field, message):
    response = manager.post(add_url(), new_tenancy_post(unit, **overrides))
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors[field]
    assert not Tenancy.objects.exists()
    assert not User.objects.filter(is_staff=False).exists()


def test_it_gives_the_errors_in_danish(manager, unit):
    manager.post(reverse("set_language"), {"language": "da"})
    response = manager.post(add_url(), new_tenancy_post(unit, phone="ring til mig"))
    assert "Skriv et telefonnummer med cifre, mellemrum, + og - alene." in response.content.decode()


def test_it_refuses_an_overlapping_tenancy_without_creating_a_login(manager, unit, tenancy):
    response = manager.post(add_url(), new_tenancy_post(unit, move_in="2025-01-01"))
    assert response.status_code == 200
    assert "The unit has another tenancy in this period." in response.content.decode()
    assert list(Tenancy.objects.all()) == [tenancy]
    assert not User.objects.filter(email="tove@example.org").exists()


# --- Invitations from the change page and the action -------------------------------------------------


@pytest.fixture
def tove_tenancy(unit):
    tove = User.objects.create_user("tove@example.org", email="tove@example.org", first_name="Tove")
    tove.set_unusable_password()
    tove.save()
    two_th = unit.__class__.objects.create(property=unit.property, label="2 th", floor_area_m2=50)
    return Tenancy.objects.create(unit=two_th, tenant=tove, move_in=date(2025, 2, 1), language="en")


def invite_url(tenancy):
    return reverse("admin:readings_tenancy_invite", args=[tenancy.pk])


def test_it_sends_and_resends_the_invitation_from_the_change_page(
    manager, tove_tenancy, smtp_server, django_capture_on_commit_callbacks
):
    change_page = manager.get(reverse("admin:readings_tenancy_change", args=[tove_tenancy.pk])).content.decode()
    assert invite_url(tove_tenancy) in change_page and "Send invitation" in change_page
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = manager.post(invite_url(tove_tenancy))
        assert response.status_code == 302
    assert len(smtp_server.to("tove@example.org")) == 2
    again = manager.get(reverse("admin:readings_tenancy_change", args=[tove_tenancy.pk])).content.decode()
    assert "Send the invitation again" in again and "Invited" in again


def test_it_answers_a_get_of_the_invite_url_with_405(manager, tove_tenancy, smtp_server):
    assert manager.get(invite_url(tove_tenancy)).status_code == 405
    assert smtp_server.messages == []


def test_it_invites_the_selected_tenants_by_the_action_skipping_those_without_email(
    manager, tove_tenancy, tenancy, smtp_server, django_capture_on_commit_callbacks
):
    # tina: a password, no e-mail
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(
            reverse("admin:readings_tenancy_changelist"),
            {"action": "invite", "_selected_action": [tove_tenancy.pk, tenancy.pk]},
            follow=True,
        )
    assert [str(message["To"]) for message in smtp_server.messages] == ["tove@example.org"]
    shown = [str(message) for message in response.context["messages"]]
    assert "1 invitation sent." in shown
    assert "1 tenant was not invited: no e-mail address, or they already have a password." in shown


def test_it_refuses_charlie_inviting_alices_tenant(
    client, charlie, property_managers, tove_tenancy, smtp_server, django_capture_on_commit_callbacks
):
    client.force_login(charlie)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(invite_url(tove_tenancy)).status_code == 404
        client.post(
            reverse("admin:readings_tenancy_changelist"),
            {"action": "invite", "_selected_action": [tove_tenancy.pk]},
        )
    assert smtp_server.messages == []
    assert client.get(reverse("admin:readings_tenancy_change", args=[tove_tenancy.pk])).status_code == 404
    assert "tove" not in client.get(reverse("admin:readings_tenancy_changelist")).content.decode()


def test_it_refuses_a_tenant_invitation_to_a_manager_without_change_permission(
    client, django_user_model, organisation, tove_tenancy, smtp_server
):
    from django.contrib.auth.models import Permission

    viewer = django_user_model.objects.create_user("viewer", password="viewer-password-1", is_staff=True)
    organisation.managers.add(viewer)
    viewer.user_permissions.add(Permission.objects.get(codename="view_tenancy"))
    client.force_login(viewer)
    assert client.post(invite_url(tove_tenancy)).status_code == 403
    assert smtp_server.messages == []


# --- What managers see -----------------------------------------------------------------------------


def test_it_never_shows_a_manager_a_password_field_or_hash(manager, unit, tenancy, tina):
    pages = [
        add_url(),
        reverse("admin:readings_tenancy_change", args=[tenancy.pk]),
        reverse("admin:readings_tenancy_changelist"),
        reverse("admin:readings_unit_change", args=[unit.pk]),
    ]
    for page in pages:
        html = manager.get(page).content.decode()
        assert 'type="password"' not in html and 'name="password' not in html, page
        assert tina.password not in html and "pbkdf2" not in html, page
    assert manager.get(reverse("admin:auth_user_change", args=[tina.pk])).status_code == 403


def test_it_links_tenants_on_the_unit_page_to_their_tenancy_not_the_user_admin(manager, unit, tenancy):
    html = manager.get(reverse("admin:readings_unit_change", args=[unit.pk])).content.decode()
    assert "/admin/auth/user/" not in html
    assert reverse("admin:readings_tenancy_change", args=[tenancy.pk]) in html
    assert "tina" in html


def test_it_shows_the_login_state_of_each_tenancy(manager, unit, tenancy, tove_tenancy):
    html = manager.get(reverse("admin:readings_tenancy_changelist")).content.decode()
    assert "Active" in html  # tina has a password
    assert "Not invited" in html  # tove has an address, no invitation yet


def test_it_lists_and_counts_the_current_tenants_without_email_for_paper(manager, unit, tenancy, tove_tenancy):
    Tenancy.objects.filter(pk=tenancy.pk).update(move_out=date(2025, 2, 1))  # tina: no e-mail, moved out
    paperless = Tenancy.objects.create(
        unit=unit.__class__.objects.create(property=unit.property, label="3 tv", floor_area_m2=60),
        tenant=User.objects.create_user("pia"),
        move_in=date(2024, 1, 1),
    )
    changelist = reverse("admin:readings_tenancy_changelist")
    response = manager.get(changelist)
    assert "1 current tenancy has no e-mail address" in response.content.decode()
    on_paper = manager.get(changelist, {"account": "paper"})
    assert set(on_paper.context["cl"].result_list) == {tenancy, paperless}
    with_email = manager.get(changelist, {"account": "email"})
    assert list(with_email.context["cl"].result_list) == [tove_tenancy]


def change_post(tenancy, **overrides):
    data = {
        "unit": tenancy.unit_id,
        "phone": "",
        "language": tenancy.language,
        "move_in": tenancy.move_in.isoformat(),
        "move_out": "",
    }
    return {**data, **overrides}


def test_it_corrects_the_email_of_a_tenant_who_has_not_chosen_a_password(
    manager, tove_tenancy, smtp_server, django_capture_on_commit_callbacks
):
    change = reverse("admin:readings_tenancy_change", args=[tove_tenancy.pk])
    assert 'name="email"' in manager.get(change).content.decode()
    assert manager.post(change, change_post(tove_tenancy, email="Tove.Hansen@example.org")).status_code == 302
    with django_capture_on_commit_callbacks(execute=True):
        manager.post(invite_url(tove_tenancy))
    assert len(smtp_server.to("tove.hansen@example.org")) == 1


def test_it_keeps_the_email_of_a_tenant_with_a_password_out_of_a_managers_hands(manager, tenancy, tina):
    tina.email = "tina@example.org"
    tina.save()
    change = reverse("admin:readings_tenancy_change", args=[tenancy.pk])
    assert 'name="email"' not in manager.get(change).content.decode()
    assert manager.post(change, change_post(tenancy, email="mallory@example.org")).status_code == 302
    tina.refresh_from_db()
    assert tina.email == "tina@example.org"


def test_it_refuses_a_bad_phone_on_the_change_page(manager, tenancy):
    change = reverse("admin:readings_tenancy_change", args=[tenancy.pk])
    response = manager.post(change, change_post(tenancy, phone="+45 ring"))
    assert response.context["adminform"].form.errors["phone"] == [
        "Enter a phone number of digits, spaces, + and - only."
    ]


def test_it_answers_a_refused_address_without_an_error_page(
    manager, tove_tenancy, smtp_server, django_capture_on_commit_callbacks, caplog
):
    tove = tove_tenancy.tenant
    tove.email = "tove@refused.invalid"
    tove.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = manager.post(invite_url(tove_tenancy))
    assert response.status_code == 302
    assert smtp_server.messages == []
    assert any("on_commit" in record.getMessage() for record in caplog.records)  # the failure is logged


def test_it_records_the_forwarding_address_of_a_tenant_who_moves_out(manager, tenancy):
    # The statement of the move-out year is posted months later: it must not go to the unit.
    change = reverse("admin:readings_tenancy_change", args=[tenancy.pk])
    manager.post(reverse("set_language"), {"language": "da"})
    assert "Adresse efter fraflytning" in manager.get(change).content.decode()
    post = change_post(tenancy, move_out="2025-08-01", forwarding_address="Bakkevej 7\r\n8000 Aarhus C")

    assert manager.post(change, post).status_code == 302

    tenancy.refresh_from_db()
    assert tenancy.forwarding_address.splitlines() == ["Bakkevej 7", "8000 Aarhus C"]
