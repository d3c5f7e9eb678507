"""Pages of the settlements app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from settlements import views

app_name = "settlements"

urlpatterns: list[URLPattern | URLResolver] = [
    path("settlements/<int:settlement_id>/statement/", views.statement, name="statement"),
    path("settlements/<int:settlement_id>/statement.pdf", views.statement_pdf_download, name="statement-pdf"),
]
