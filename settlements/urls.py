"""Pages of the settlements app (included at the site root by mbusportal/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from settlements import objection_views, views

app_name = "settlements"

urlpatterns: list[URLPattern | URLResolver] = [
    path("settlements/<int:settlement_id>/statement/", views.statement, name="statement"),
    path("settlements/<int:settlement_id>/statement.pdf", views.statement_pdf_download, name="statement-pdf"),
    path("settlements/lines/<int:line_id>/objection/", objection_views.objection_new, name="objection_new"),
    path("settlements/objections/<int:objection_id>/", objection_views.objection_detail, name="objection"),
    path(
        "settlements/objections/<int:objection_id>/attachments/<int:attachment_id>/",
        objection_views.objection_attachment,
        name="objection_attachment",
    ),
]
