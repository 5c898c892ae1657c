from django.urls import path

from evaluation.scorer_trust import views

app_name = "scorer_trust"
urlpatterns = [
    path("judges/", views.judges_overview, name="judges"),
    path("judges/<str:code>/", views.judges_language, name="judges-language"),
    path("training/", views.training_list, name="training-list"),
    path("training/<int:pk>/", views.training_detail, name="training-detail"),
    path("training/<int:pk>/cancel/", views.training_cancel, name="training-cancel"),
    path("evaluations/", views.evaluation_list, name="evaluation-list"),
    path("evaluations/<int:pk>/", views.evaluation_detail, name="evaluation-detail"),
    path("evaluations/<int:pk>/cancel/", views.evaluation_cancel, name="evaluation-cancel"),
    path("<str:kind>/<int:pk>/progress/", views.run_progress, name="progress"),
    path("imports/", views.import_list, name="import-list"),
]
