from django.urls import path

from toxplatform.corpus import views

app_name = "corpus"
urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("<slug:slug>/", views.dataset_detail, name="dataset-detail"),
    path("<slug:slug>/prompts/", views.prompt_list, name="prompt-list"),
    path("<slug:slug>/prompts/<int:pk>/", views.prompt_detail, name="prompt-detail"),
]
