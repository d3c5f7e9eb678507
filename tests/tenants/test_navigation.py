"""The site's navigation (templates/base.html): a tenant reaches every page of theirs by links; staff keep theirs."""

import re

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _pool_of_this_test(fresh_pool):
    """/consumption/ opens the async pool in the test's event loop; close it with the test."""
    yield


def nav_of(html):
    nav = re.search(r'<nav class="site-nav".*?</nav>', html, re.S)
    assert nav
    return nav[0]


def nav_links(html):
    return re.findall(r'<a href="([^"]+)"', nav_of(html))


async def test_it_gives_a_tenant_links_home_and_to_her_pages_on_the_consumption_page(async_client, tina, tenancy):
    await async_client.aforce_login(tina)
    response = await async_client.get("/consumption/")
    assert response.status_code == 200
    assert nav_links(response.content.decode()) == ["/home/", "/consumption/", "/home/#statements", "/home/downloads/"]


async def test_it_marks_the_page_she_is_on(async_client, tina, tenancy):
    await async_client.aforce_login(tina)
    html = (await async_client.get("/home/downloads/")).content.decode()
    assert '<a href="/home/downloads/" aria-current="page">' in html


async def test_it_offers_the_language_switch_and_log_out_in_the_navigation(async_client, tina, tenancy):
    await async_client.aforce_login(tina)
    html = (await async_client.get("/home/", headers={"accept-language": "da"})).content.decode()
    nav = nav_of(html)
    assert 'action="/i18n/setlang/"' in nav and "Log ud (tina)" in nav
    assert ">Forside</a>" in nav and ">Opgørelser</a>" in nav


async def test_it_gives_a_manager_no_tenant_links(async_client, alice, organisation):
    await async_client.aforce_login(alice)
    html = (await async_client.get("/home/")).content.decode()
    assert nav_links(html) == ["/admin/", "/alarms/"]
