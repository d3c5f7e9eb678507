"""Pages and endpoints of the gateways app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path
from django.views.i18n import JavaScriptCatalog

from gateways import api, openapi, system_views, views

app_name = "gateways"

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/readings", api.post_readings, name="api-readings"),
    path("api/v1/frames", api.post_frames, name="api-frames"),
    path("api/v1/openapi.json", openapi.openapi_json, name="api-openapi"),
    path("alarms/", views.alarm_dashboard, name="alarm-dashboard"),
    # The dashboard script's own words (gateways/locale/*/djangojs.po); the language is the request's.
    path(
        "alarms/jsi18n/",
        JavaScriptCatalog.as_view(packages=["gateways"]),
        name="alarm-jsi18n",
    ),
    path("alarms/<int:alarm_id>/", views.alarm_detail, name="alarm-detail"),
    path("alarms/<int:alarm_id>/acknowledge/", views.acknowledge_alarm, name="alarm-acknowledge"),
    path("alarms/<int:alarm_id>/clear/", views.clear_alarm, name="alarm-clear"),
    path("alarms/<int:alarm_id>/note/", views.note_alarm, name="alarm-note"),
    path("alarms/<int:alarm_id>/assign/", views.assign_alarm, name="alarm-assign"),
    path("system/", system_views.system, name="system"),
    path("alarms/unsubscribe/<str:token>/", views.unsubscribe, name="alarm-unsubscribe"),
]
