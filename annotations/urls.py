from django.urls import path

from annotations import views

app_name = "annotations"
urlpatterns = [
    path("", views.index, name="index"),
    path("preferences/", views.preferences, name="preferences"),
    # Annotators
    path("campaigns/<int:pk>/work/", views.work, name="work"),
    path("campaigns/<int:pk>/undo/", views.undo, name="undo"),
    path("items/<int:pk>/", views.item, name="item"),
    path("items/<int:pk>/answer/", views.answer, name="answer"),
    path("items/<int:pk>/skip/", views.skip, name="skip"),
    # Researchers
    path("campaigns/new/", views.campaign_create, name="campaign-create"),
    path("campaigns/<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("campaigns/<int:pk>/enroll/", views.campaign_enroll, name="campaign-enroll"),
    path("campaigns/<int:pk>/status/", views.campaign_status, name="campaign-status"),
    path("campaigns/<int:pk>/judgments.jsonl", views.campaign_export_jsonl, name="export-jsonl"),
    path("campaigns/<int:pk>/judgments.csv", views.campaign_export_csv, name="export-csv"),
]
