"""readings.tenant_logins: the one rule by which the admin's tenancy form and the exchange import find or
create a tenant's login."""

from datetime import date
from decimal import Decimal

import pytest

from readings.models import Property, Tenancy, Unit
from readings.tenant_logins import USERNAME_MAX_LENGTH, known_tenant, new_tenant_login

pytestmark = pytest.mark.django_db


def a_tenancy_of(organisation, tenant):
    prop = Property.objects.create(organisation=organisation, name=f"{organisation.name} house")
    unit = Unit.objects.create(property=prop, label="st.", floor_area_m2=Decimal(50))
    return Tenancy.objects.create(unit=unit, tenant=tenant, move_in=date(2024, 1, 1))


def test_it_finds_a_tenant_of_the_visible_tenancies_by_address_in_any_case(organisation, tina):
    tina.email = "Tina@Example.dk"
    tina.save()
    a_tenancy_of(organisation, tina)
    visible = Tenancy.objects.filter(unit__property__organisation=organisation)
    assert known_tenant(visible, "tina@example.DK") == tina
    assert known_tenant(visible, "someone@example.dk") is None
    assert known_tenant(visible, "") is None


def test_it_never_finds_a_tenant_of_another_organisation_nor_staff(organisation, other_organisation, tina, charlie):
    tina.email = charlie.email = "shared@example.dk"
    tina.save()
    charlie.save()
    a_tenancy_of(other_organisation, tina)  # a tenant elsewhere: not to be reused, nor told
    a_tenancy_of(organisation, charlie)  # staff
    assert known_tenant(Tenancy.objects.filter(unit__property__organisation=organisation), "shared@example.dk") is None


def test_it_makes_a_login_named_after_the_tenant_that_cannot_log_in_yet(db):
    user = new_tenant_login(name="  Karen Blixen Dinesen ", email="karen@example.dk")
    assert (user.username, user.first_name, user.last_name) == ("karen@example.dk", "Karen Blixen", "Dinesen")
    assert not user.has_usable_password()
    assert new_tenant_login(name="Cher", email="").first_name == "Cher"


def test_it_never_reuses_a_user_name_and_keeps_names_to_their_columns(db, django_user_model):
    django_user_model.objects.create_user("karen@example.dk")
    second = new_tenant_login(name="K" * 200 + " " + "B" * 200, email="KAREN@example.dk")
    assert second.username.startswith("karen@example.dk-") and len(second.username) <= USERNAME_MAX_LENGTH
    assert (len(second.first_name), len(second.last_name)) == (150, 150)
    unusable = new_tenant_login(name="X", email="not a user name!")
    assert unusable.username == "tenant"
    assert new_tenant_login(name="Y", email="").username.startswith("tenant-")
