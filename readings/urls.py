"""Pages and endpoints of the readings app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from readings import consumption_views

app_name = "readings"

urlpatterns: list[URLPattern | URLResolver] = [
    path("consumption/", consumption_views.tenant_consumption, name="tenant-consumption"),
    path("properties/<int:property_id>/", consumption_views.manager_property_overview, name="property-overview"),
    path(
        "properties/<int:property_id>/units/<int:unit_id>/consumption/",
        consumption_views.manager_unit_consumption,
        name="unit-consumption",
    ),
]
