"""The read API (included at the site root by mbusportal/urls.py, before the gateways app, so that
/api/v1/openapi.json is the whole API's document: the gateway endpoints and these)."""

from django.urls import URLPattern, URLResolver, path

from integrations import api, openapi

app_name = "integrations"

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/openapi.json", openapi.openapi_json, name="api-openapi"),
    path("api/v1/properties", api.property_list, name="api-properties"),
    path("api/v1/properties/<int:property_id>", api.property_detail, name="api-property"),
    path("api/v1/properties/<int:property_id>/readings", api.property_readings, name="api-property-readings"),
    path("api/v1/units", api.unit_list, name="api-units"),
    path("api/v1/units/<int:unit_id>", api.unit_detail, name="api-unit"),
    path("api/v1/units/<int:unit_id>/readings", api.unit_readings, name="api-unit-readings"),
    path("api/v1/units/<int:unit_id>/consumption", api.unit_consumption, name="api-unit-consumption"),
    path("api/v1/tenancies", api.tenancy_list, name="api-tenancies"),
    path("api/v1/installations", api.installation_list, name="api-installations"),
    path("api/v1/installations/<int:installation_id>", api.installation_detail, name="api-installation"),
    path(
        "api/v1/installations/<int:installation_id>/readings",
        api.installation_readings,
        name="api-installation-readings",
    ),
    path("api/v1/gateways", api.gateway_list, name="api-gateways"),
    path("api/v1/alarms", api.alarm_list, name="api-alarms"),
    path("api/v1/settlements", api.settlement_list, name="api-settlements"),
    path("api/v1/settlements/<int:settlement_id>", api.settlement_detail, name="api-settlement"),
]
