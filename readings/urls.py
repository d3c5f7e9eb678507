"""Pages and endpoints of the readings app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from readings import consumption_views, export_views

app_name = "readings"

urlpatterns: list[URLPattern | URLResolver] = [
    path("consumption/", consumption_views.tenant_consumption, name="tenant-consumption"),
    path("properties/<int:property_id>/", consumption_views.manager_property_overview, name="property-overview"),
    path(
        "properties/<int:property_id>/units/<int:unit_id>/consumption/",
        consumption_views.manager_unit_consumption,
        name="unit-consumption",
    ),
    path(
        "export/properties/<int:property_id>/readings.csv",
        export_views.property_readings,
        name="export_property_readings",
    ),
    path(
        "export/properties/<int:property_id>/consumption.csv",
        export_views.property_consumption,
        name="export_property_consumption",
    ),
    path("my/readings.csv", export_views.my_readings, name="export_my_readings"),
    path("my/consumption.csv", export_views.my_consumption, name="export_my_consumption"),
]
