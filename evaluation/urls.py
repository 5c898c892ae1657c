from django.urls import path

from evaluation import judge_views, views

app_name = "evaluation"
urlpatterns = [
    path("jobs/", views.job_list, name="job-list"),
    path("jobs/new/", views.job_create, name="job-create"),
    path("jobs/compare/", views.job_compare, name="job-compare"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/progress/", views.job_progress, name="job-progress"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:pk>/samples/", views.job_samples, name="job-samples"),
    path("jobs/<int:pk>/samples.jsonl", views.job_samples_download, name="job-samples-download"),
    path("jobs/<int:pk>/metrics.csv", views.job_metrics_download, name="job-metrics-download"),
    path("leaderboards/", views.leaderboard_list, name="leaderboard-list"),
    path("leaderboards/languages/<str:code>/", views.leaderboard_language, name="leaderboard-language"),
    path("leaderboards/languages/<str:code>.csv", views.leaderboard_language_csv, name="leaderboard-language-csv"),
    path("leaderboards/categories/<slug:slug>/", views.leaderboard_category, name="leaderboard-category"),
    path("judge-prompts/", judge_views.judge_prompt_list, name="judge-prompt-list"),
    path("judge-prompts/<slug:name>/", judge_views.judge_prompt_detail, name="judge-prompt-detail"),
]
