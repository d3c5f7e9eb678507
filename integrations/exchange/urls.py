from django.urls import path

from integrations.exchange import views

app_name = "exchange"

urlpatterns = [
    path("schema/<str:version>/<str:name>", views.schema_file, name="schema"),
    path("tenancies", views.tenancies_import, name="tenancies"),
]
