"""Pages and endpoints of the gateways app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from gateways import views

app_name = "gateways"

urlpatterns: list[URLPattern | URLResolver] = [
    path("alarms/", views.alarm_dashboard, name="alarm-dashboard"),
    path("alarms/<int:alarm_id>/acknowledge/", views.acknowledge_alarm, name="alarm-acknowledge"),
    path("alarms/<int:alarm_id>/clear/", views.clear_alarm, name="alarm-clear"),
]
